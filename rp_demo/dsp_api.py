"""The DSP API: a small resource server holding the demo records (``python -m rp_demo.dsp_api``).

It verifies the provider's JWT access tokens offline (RFC 9068 §4: JWKS signature, ``typ``
``at+jwt``, ``iss``, ``aud`` naming this API, ``exp``) and refuses tokens meant for anyone
else. Every read is kept in the record's access trail with the ``act`` claim (RFC 8693 §4.1),
so the patient's "Traçabilité" tab tells the owner from an assistant acting for them.
The records are the sample documents of ``data/documents.json``; the trail lives in memory,
as befits a demo.
"""

import argparse
import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app, g, jsonify, request
from werkzeug.serving import run_simple

from .protocol import InvalidToken, ProviderError, ProviderKeys, discover, validate_claims

DOCUMENTS = json.loads((Path(__file__).parent / "data" / "documents.json").read_text(encoding="utf-8"))
DOCUMENTS_PER_RECORD = 5
REALM = "dsp-api"


@dataclass(frozen=True)
class Access:
    at: int
    subject: str
    actor: str | None  # ``act.sub``: the assistant reading the record, None for the owner
    client_id: str | None


class AccessTrail:
    """Who read which record, newest first; thread-safe (the server is threaded)."""

    def __init__(self) -> None:
        self._entries: list[Access] = []
        self._lock = threading.Lock()

    def record(self, entry: Access) -> None:
        with self._lock:
            self._entries.append(entry)

    def for_subject(self, subject: str) -> list[Access]:
        with self._lock:
            return [entry for entry in reversed(self._entries) if entry.subject == subject]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """``ISSUER``: the provider; ``AUDIENCE``: this API's identifier, required in ``aud``."""
    app = Flask(__name__)
    app.config.update(ISSUER="http://127.0.0.1:5000", AUDIENCE="http://127.0.0.1:5002")
    app.config.update(config or {})
    app.extensions["dsp_api"] = {"trail": AccessTrail(), "keys": None, "lock": threading.Lock()}

    @app.get("/")
    def about():
        return jsonify(service="DSP API", issuer=app.config["ISSUER"], audience=app.config["AUDIENCE"])

    @app.get("/v1/record")
    def record():
        claims = _authenticate()
        actor = (claims.get("act") or {}).get("sub")
        _state()["trail"].record(Access(int(time.time()), claims["sub"], actor, claims.get("client_id")))
        current_app.logger.info("record %s read by %s", claims["sub"], f"assistant {actor}" if actor else "its owner")
        return jsonify(subject=claims["sub"], acting=claims.get("act"), documents=documents_for(claims["sub"]))

    @app.get("/v1/record/accesses")
    def accesses():
        claims = _authenticate()
        return jsonify(accesses=[asdict(entry) for entry in _state()["trail"].for_subject(claims["sub"])])

    app.register_error_handler(InvalidToken, _invalid_token)
    app.register_error_handler(ProviderError, _provider_unavailable)
    return app


def documents_for(subject: str) -> list[dict[str, Any]]:
    """A stable pick of the sample documents per record, newest first, so records differ."""
    ranked = sorted(DOCUMENTS, key=lambda document: hashlib.sha256(f"{subject}|{document['id']}".encode()).digest())
    return sorted(ranked[:DOCUMENTS_PER_RECORD], key=lambda document: document["date"], reverse=True)


def _state() -> dict[str, Any]:
    return current_app.extensions["dsp_api"]


def _keys() -> ProviderKeys:
    state = _state()
    with state["lock"]:
        if state["keys"] is None:
            state["keys"] = ProviderKeys(discover(current_app.config["ISSUER"])["jwks_uri"])
        return state["keys"]


def _authenticate() -> dict[str, Any]:
    """The verified claims of the Bearer token (RFC 6750 §2.1), or :class:`InvalidToken`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        g.missing_token = True
        raise InvalidToken("a Bearer access token is required")
    claims = _keys().verify(token.strip(), typ="at+jwt").claims
    validate_claims(claims, issuer=current_app.config["ISSUER"], audience=current_app.config["AUDIENCE"])
    return claims


def _invalid_token(error: InvalidToken):
    """RFC 6750 §3: no error code when no token came, ``invalid_token`` otherwise."""
    if g.get("missing_token"):
        challenge = f'Bearer realm="{REALM}"'
        body = {"error_description": str(error)}
    else:
        description = str(error).replace('"', "'")
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
        body = {"error": "invalid_token", "error_description": str(error)}
    response = jsonify(body)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge
    return response


def _provider_unavailable(error: ProviderError):
    current_app.logger.warning("provider unavailable: %s", error)
    response = jsonify(error="temporarily_unavailable", error_description="the identity provider's keys are unavailable")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rp_demo.dsp_api", description="The demo DSP API (resource server).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--issuer", default="http://127.0.0.1:5000")
    parser.add_argument("--audience", default=None, help="this API's identifier (default: its own URL)")
    arguments = parser.parse_args(argv)
    audience = arguments.audience or f"http://{arguments.host}:{arguments.port}"
    app = create_app({"ISSUER": arguments.issuer, "AUDIENCE": audience})
    run_simple(arguments.host, arguments.port, app, threaded=True)


if __name__ == "__main__":
    main()
