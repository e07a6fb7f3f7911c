"""The load generator: runs in its own process, drives one scenario against the IdP over HTTP/1.1.

``python -m bench.load PLAN.json`` reads what to do (scenario, target, connections, duration or
number of operations, and either as fast as possible or a fixed arrival rate) and prints one JSON result: completed
operations, HTTP requests, errors and latency percentiles.

Two modes:
- *peak* (closed loop): each connection sends its next operation as soon as the last answered;
- *rate* (open loop): operations start on a fixed schedule at the given rate, and latency is
  measured from the scheduled start, so a stalled server shows up in the percentiles instead of
  slowing the schedule (no coordinated omission).

It is asyncio on raw sockets with keep-alive connections: cheap enough per request that one
process can drive the IdP's workers on the same machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CODE = re.compile(r"\b(\d{6})\b")


class ScenarioError(Exception):
    """An answer that is not what a correct provider returns (counted as an error)."""


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), [""])[-1]

    def json(self) -> dict:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection to the IdP; reconnects when the server closed it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None
        self.requests = 0

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
        reused = self.writer is not None
        try:
            return await self._exchange(method, path, headers or {}, body)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            self.close()
            if not reused or getattr(error, "partial", b""):
                raise
            # The server closed an idle keep-alive connection (or a recycled worker): as every
            # HTTP client does, resend once on a fresh connection.
            return await self._exchange(method, path, headers or {}, body)

    async def _exchange(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        if self.writer is None:
            await self._open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "User-Agent: idp-bench"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer: dict[str, list[str]] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                answer.setdefault(name.strip().lower(), []).append(value.strip())
        if "chunked" in answer.get("transfer-encoding", [""])[-1]:
            payload = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                payload += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del payload[-2:]
            data = bytes(payload)
        else:
            data = await self.reader.readexactly(int(answer.get("content-length", ["0"])[-1]))
        self.requests += 1
        if "close" in answer.get("connection", [""])[-1].lower():
            self.close()
        return Response(status, answer, data)


@dataclass
class Browser:
    """Cookies of one user agent (the flow cookie and the SSO cookie)."""

    cookies: dict[str, str] = field(default_factory=dict)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def keep(self, response: Response) -> Response:
        for cookie in response.headers.get("set-cookie", []):
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return response


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _expect(response: Response, *statuses: int) -> Response:
    if response.status not in statuses:
        raise ScenarioError(f"HTTP {response.status}: {response.body[:200]!r}")
    return response


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Scenario:
    """What one operation of a scenario is; ``setup`` gives each connection its own state."""

    def __init__(self, plan: dict):
        self.plan = plan
        self.data = plan["data"]

    async def setup(self, index: int) -> dict:
        return {}

    async def run(self, connection: Connection, state: dict) -> int:
        raise NotImplementedError

    def outputs(self, states: list[dict]) -> dict:
        return {}


class Login(Scenario):
    """authorize -> login page -> password -> one-time code (read from the outbox, where the SMS
    gateway would deliver it) -> code page -> code -> back to authorize -> token request."""

    async def setup(self, index: int) -> dict:
        import psycopg

        database = await psycopg.AsyncConnection.connect(self.data["database_url"], autocommit=True)
        # Each connection logs in its own patients: two logins of one patient at once would each
        # find the other's code as the latest message.
        own = self.data["patients"][index::self.plan["connections"]]
        return {"database": database, "issued": [], "patients": own, "next": 0}

    async def run(self, connection: Connection, state: dict) -> int:
        patient = state["patients"][state["next"] % len(state["patients"])]
        state["next"] += 1
        browser = Browser()
        verifier, query = self._authorization_request()
        to_login = browser.keep(_expect(await connection.request("GET", "/authorize?" + query), 302, 303))
        page = browser.keep(_expect(await connection.request("GET", _path(to_login.header("location")), browser.headers()), 200))
        form = {"csrf_token": html.unescape(CSRF.search(page.body.decode()).group(1)), "matricule": patient["matricule"],
                "password": patient["password"], "next": _query(to_login.header("location"))["next"]}
        sent = browser.keep(_expect(await connection.request("POST", "/login", browser.headers(FORM), urlencode(form).encode()), 303))
        if not sent.header("location").endswith("/login/code"):
            raise ScenarioError(f"password step went to {sent.header('location')}")
        code = await self._delivered_code(state["database"], patient["mobile"])
        page = browser.keep(_expect(await connection.request("GET", "/login/code", browser.headers()), 200))
        form = {"csrf_token": html.unescape(CSRF.search(page.body.decode()).group(1)), "code": code}
        done = browser.keep(_expect(await connection.request("POST", "/login/code", browser.headers(FORM), urlencode(form).encode()), 303))
        await self._redeem(connection, browser, state, verifier, _path(done.header("location")))
        state["browser"] = browser
        return 8

    def _authorization_request(self) -> tuple[str, str]:
        rp = self.data["rp"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return verifier, urlencode({"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
                                    "scope": "openid profile offline_access", "state": secrets.token_hex(4),
                                    "nonce": secrets.token_hex(8), "code_challenge": challenge, "code_challenge_method": "S256"})

    async def _redeem(self, connection: Connection, browser: Browser, state: dict, verifier: str, authorize_path: str) -> None:
        """Back at /authorize with a session: the code, then the token request."""
        rp = self.data["rp"]
        back = browser.keep(_expect(await connection.request("GET", authorize_path, browser.headers()), 302, 303))
        answer = _query(back.header("location"))
        if "code" not in answer:
            raise ScenarioError(f"no code in {back.header('location')}")
        body = urlencode({"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": rp["redirect_uri"],
                          "code_verifier": verifier}).encode()
        tokens = _expect(await connection.request("POST", "/token", {**FORM, **_basic(rp["client_id"], rp["secret"])}, body), 200).json()
        if len(state["issued"]) < 100:
            state["issued"].append({"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]})

    @staticmethod
    async def _delivered_code(database, mobile: str) -> str:
        for _ in range(50):
            async with database.cursor() as cursor:
                await cursor.execute('SELECT body FROM outbox_message WHERE "to" = %s ORDER BY id DESC LIMIT 1', (mobile,))
                row = await cursor.fetchone()
            if row and (match := CODE.search(row[0])):
                return match.group(1)
            await asyncio.sleep(0.01)
        raise ScenarioError("no one-time code delivered")

    def outputs(self, states: list[dict]) -> dict:
        return {"tokens": [token for state in states for token in state["issued"]]}


class Tokens(Login):
    """Token families for the other scenarios: one login per connection, then single sign-on
    (authorize with the SSO cookie -> code -> token), each giving a fresh refresh token family."""

    async def run(self, connection: Connection, state: dict) -> int:
        if "browser" not in state:
            return await super().run(connection, state)
        verifier, query = self._authorization_request()
        await self._redeem(connection, state["browser"], state, verifier, "/authorize?" + query)
        return 2


class Refresh(Scenario):
    """Refresh grant with rotation: each connection follows its own token family (a family used
    by two connections would be a replay, and the provider would revoke it)."""

    async def setup(self, index: int) -> dict:
        return {"refresh_token": self.data["tokens"][index]["refresh_token"]}

    async def run(self, connection: Connection, state: dict) -> int:
        rp = self.data["rp"]
        body = urlencode({"grant_type": "refresh_token", "refresh_token": state["refresh_token"]}).encode()
        answer = _expect(await connection.request("POST", "/token", {**FORM, **_basic(rp["client_id"], rp["secret"])}, body), 200).json()
        state["refresh_token"] = answer["refresh_token"]
        return 1


class ClientCredentials(Scenario):
    async def run(self, connection: Connection, state: dict) -> int:
        machine = self.data["machine"]
        body = b"grant_type=client_credentials"
        if machine.get("scope"):
            body += b"&" + urlencode({"scope": machine["scope"]}).encode()
        answer = _expect(await connection.request("POST", machine.get("path", "/token"),
                                                  {**FORM, **_basic(machine["client_id"], machine["secret"])}, body), 200).json()
        if not answer.get("access_token"):
            raise ScenarioError("no access token")
        return 1


class Userinfo(Scenario):
    async def setup(self, index: int) -> dict:
        return {"token": self.data["tokens"][index % len(self.data["tokens"])]["access_token"]}

    async def run(self, connection: Connection, state: dict) -> int:
        _expect(await connection.request("GET", "/userinfo", {"Authorization": "Bearer " + state["token"]}), 200)
        return 1


class Introspection(Scenario):
    async def setup(self, index: int) -> dict:
        return {"token": self.data["tokens"][index % len(self.data["tokens"])]["access_token"]}

    async def run(self, connection: Connection, state: dict) -> int:
        api = self.data["machine"]  # the resource server the viewer's tokens are for
        body = urlencode({"token": state["token"]}).encode()
        answer = _expect(await connection.request("POST", "/introspect", {**FORM, **_basic(api["client_id"], api["secret"])}, body), 200).json()
        if answer.get("active") is not True:
            raise ScenarioError("token not active")
        return 1


class JwksAndDiscovery(Scenario):
    """Relying parties' key and metadata fetches, alternating, full answers (no If-None-Match)."""

    async def setup(self, index: int) -> dict:
        return {"next": index % 2}

    async def run(self, connection: Connection, state: dict) -> int:
        path = (self.data.get("jwks_path", "/jwks.json"), "/.well-known/openid-configuration")[state["next"]]
        state["next"] ^= 1
        _expect(await connection.request("GET", path), 200)
        return 1


SCENARIOS = {"tokens": Tokens, "login": Login, "refresh": Refresh, "client_credentials": ClientCredentials, "userinfo": Userinfo,
             "introspection": Introspection, "jwks_discovery": JwksAndDiscovery}


async def drive(plan: dict) -> dict:
    scenario = SCENARIOS[plan["scenario"]](plan)
    host, port = plan["host"], plan["port"]
    count = plan["connections"]
    connections = [Connection(host, port) for _ in range(count)]
    states = [await scenario.setup(index) for index in range(count)]
    latencies: list[float] = []
    errors: list[str] = []
    requests_done = 0
    operations = 0
    duration = plan["duration"]
    started = time.perf_counter()
    deadline = started + duration

    async def one(connection: Connection, state: dict, scheduled: float) -> None:
        nonlocal requests_done, operations
        try:
            requests_done += await scenario.run(connection, state)
            operations += 1
            latencies.append(time.perf_counter() - scheduled)
        except Exception as error:  # every failure is an error of the run, with its kind
            connection.close()
            errors.append(f"{type(error).__name__}: {error}"[:300])

    if plan.get("rate"):
        free = asyncio.Queue()
        for pair in zip(connections, states):
            free.put_nowait(pair)

        async def scheduled_operation(at: float) -> None:
            connection, state = await free.get()
            try:
                await one(connection, state, at)
            finally:
                free.put_nowait((connection, state))

        interval, tasks, step = 1.0 / plan["rate"], [], 0
        while (at := started + step * interval) < deadline:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(scheduled_operation(at)))
            step += 1
        await asyncio.gather(*tasks)
    else:
        limit = plan.get("operations") or float("inf")

        async def loop(connection: Connection, state: dict) -> None:
            while time.perf_counter() < deadline and operations + len(errors) < limit:
                await one(connection, state, time.perf_counter())

        await asyncio.gather(*(loop(connection, state) for connection, state in zip(connections, states)))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    for state in states:
        if "database" in state:
            await state["database"].close()
    latencies.sort()

    def percentile(fraction: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000, 2) if latencies else None

    return {"operations": operations, "requests": requests_done, "elapsed": elapsed, "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], "p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else None, **scenario.outputs(states)}


def main() -> None:
    with open(sys.argv[1]) as handle:
        plan = json.load(handle)
    print(json.dumps(asyncio.run(drive(plan))))


if __name__ == "__main__":
    main()
