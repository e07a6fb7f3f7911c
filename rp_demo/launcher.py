"""``make run``: the whole demo on one machine (``python -m rp_demo.launcher``).

It migrates the embedded SQLite database, seeds the demo data (new activation codes for the
pending patients at each start: the old ones exist only as hashes, so they could not be
shown again), then starts the identity provider, the DSP API, the DSP viewer and the MyGuichet
and LuxTrust sandbox stand-ins (``idp sandbox run``). Each runs in its own process and writes
its log to a file of its own (``--log-dir``), so that the summary the launcher prints once all
of them answer (where they answer, who can log in with what, the commands of the README's
walk-through) stays the last thing on the terminal. It stops them all on Ctrl-C or SIGTERM (or
as soon as one of them dies, showing the end of that one's log).
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

STOP_GRACE_SECONDS = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SANDBOXES = ("myguichet", "luxtrust")
DEFAULT_ISSUER = "http://127.0.0.1:5000"


class LaunchFailed(Exception):
    pass


LOG_TAIL_LINES = 20


@dataclass
class Service:
    name: str
    url: str
    health_path: str
    command: list[str]
    process: subprocess.Popen | None = None
    log: Path | None = None

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(f"    {line}" for line in lines)


def idp_command() -> str:
    """The ``idp`` script of this interpreter's environment (``.venv/bin/idp`` under ``make run``)."""
    beside = Path(sys.executable).with_name("idp")
    found = str(beside) if beside.exists() else shutil.which("idp")
    if not found:
        raise LaunchFailed("the `idp` command is not installed (run `make venv`)")
    return found


def provider_environment(host: str, ports: dict[str, int]) -> dict[str, str]:
    """Settings of the provider for this run (``IDP_*`` variables, README "Configuration")."""
    environment = dict(os.environ)
    environment.update({
        "IDP_ISSUER": f"http://{host}:{ports['idp']}",
        "IDP_DEMO_DSP_VIEWER_URL": f"http://{host}:{ports['viewer']}",
        "IDP_DEMO_DSP_API_AUDIENCE": f"http://{host}:{ports['api']}",
        "IDP_DEMO_OUTBOX_PAGE": "true",
    })
    for name in SANDBOXES:
        environment[f"IDP_FEDERATION__upstreams__{name}__metadata_url"] = f"http://{host}:{ports[name]}/saml/metadata"
    environment.pop("FLASK_DEBUG", None)  # no reloader: it would leave a child behind on stop
    return environment


def prepare(idp: str, environment: dict[str, str]) -> dict:
    """``idp db upgrade`` then ``idp demo seed``; returns the seed's report."""
    upgrade = subprocess.run([idp, "db", "upgrade"], env=environment, capture_output=True, text=True)
    if upgrade.returncode != 0:
        raise LaunchFailed(f"idp db upgrade failed:\n{upgrade.stderr}")
    seeded = subprocess.run([idp, "demo", "seed", "--json", "--reissue-letters"], env=environment, capture_output=True, text=True)
    if seeded.returncode != 0:
        raise LaunchFailed(f"idp demo seed failed:\n{seeded.stderr or seeded.stdout}")
    return json.loads(seeded.stdout)


def services(idp: str, host: str, ports: dict[str, int], viewer_key_file: str) -> list[Service]:
    issuer, viewer, api = (f"http://{host}:{ports[name]}" for name in ("idp", "viewer", "api"))
    python = sys.executable
    listed = [
        Service("Identity provider", issuer, "/.well-known/openid-configuration", [idp, "run", "--host", host, "--port", str(ports["idp"])]),
        Service("DSP API", api, "/", [python, "-m", "rp_demo.dsp_api", "--host", host, "--port", str(ports["api"]), "--issuer", issuer]),
        Service("DSP viewer", viewer, "/", [python, "-m", "rp_demo.viewer", "--host", host, "--port", str(ports["viewer"]),
                                          "--issuer", issuer, "--dsp-api", api, "--client-key-file", viewer_key_file]),
    ]
    for name, label in (("myguichet", "MyGuichet sandbox"), ("luxtrust", "LuxTrust sandbox")):
        listed.append(Service(label, f"http://{host}:{ports[name]}", "/saml/metadata",
                              [idp, "sandbox", "run", name, "--host", host, "--port", str(ports[name])]))
    return listed


def die_with_the_launcher() -> None:
    """In each service before it starts (Linux): SIGTERM when the launcher dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until_answering(service: Service, deadline: float, stop: threading.Event) -> None:
    while not stop.is_set():
        if service.process.poll() is not None:
            raise LaunchFailed(f"{service.name} exited with status {service.process.returncode}; the end of {service.log}:\n"
                               + service.log_tail())
        try:
            if requests.get(service.url + service.health_path, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise LaunchFailed(f"{service.name} does not answer at {service.url}")
        stop.wait(0.2)


def stop_all(started: list[Service]) -> None:
    """SIGTERM to each, in reverse order, then SIGKILL to any still running after the grace period."""
    for service in reversed(started):
        if service.process.poll() is None:
            service.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for service in reversed(started):
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def summary(started: list[Service], report: dict, issuer: str, log_dir: Path) -> str:
    """What a person needs to follow the README's walk-through, printed last."""
    rule = "=" * 78
    lines = ["", rule, "eSanté demo is running. Ctrl-C stops everything.", rule, "", "Services:"]
    lines += [f"  {service.name:<18} {service.url}" for service in started]
    lines += [f"  {'One-time codes':<18} {issuer}/dev/outbox", "", "Demo patients (README, \"Demo walk-through\"):"]
    for patient in report["patients"]:
        if "password" in patient:
            detail = f"password {patient['password']}"
        elif "activation_code" in patient:
            detail = f"activation code {patient['activation_code']} (its letter's code)"
        else:
            detail = "already activated"
        lines.append(f"  {patient['name']:<13} matricule {patient['matricule']}  {patient['status']:<8} {detail}")
        if patient.get("scenario"):
            lines.append(f"  {'':<13} {patient['scenario']}")
    lines += ["", "Demo clients:"]
    for client in report["clients"]:
        how = f"FAPI 2.0, private_key_jwt, key {client['client_key_file']}" if client.get("client_key_file") else "public client (PKCE, DPoP)"
        lines.append(f"  {client['client_id']:<11} {how}")
    api = next(service.url for service in started if service.name == "DSP API")
    idp = idp_command()
    prefix = "" if issuer == DEFAULT_ISSUER else f"IDP_ISSUER={issuer} "
    letter_patient = next((p for p in report["patients"] if p["status"] == "pending" and "password" not in p
                           and p.get("scenario", "").startswith("no letter")), None)
    mydsp = f"{sys.executable} -m rp_demo.mydsp --issuer {issuer} --dsp-api {api}"
    lines += ["", "Commands of the walk-through:",
              f"  MyDSP, the app:      {mydsp} login   (then: records, open 2)",
              f"  one-time codes:      {prefix}{idp} outbox list",
              f"  activation letters:  {prefix}{idp} letters render {letter_patient['matricule'] if letter_patient else 'MATRICULE'} --output letters.pdf",
              f"  helpdesk requests:   {prefix}{idp} requests list",
              "", f"Each service's log: {log_dir}/", "Ready."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rp_demo.launcher", description="Run the whole eSanté demo.")
    parser.add_argument("--host", default="127.0.0.1")
    for name, default in (("idp", 5000), ("viewer", 5001), ("api", 5002), ("myguichet", 5010), ("luxtrust", 5011)):
        parser.add_argument(f"--{name}-port", type=int, default=default)
    parser.add_argument("--ready-timeout", type=float, default=120, help="seconds for all services to answer")
    parser.add_argument("--log-dir", type=Path, default=None, help="one log file per service (default: <instance>/demo-logs)")
    arguments = parser.parse_args(argv)
    log_dir = arguments.log_dir or Path(os.environ.get("IDP_INSTANCE_PATH") or "instance") / "demo-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: getattr(arguments, f"{name}_port") for name in ("idp", "viewer", "api", *SANDBOXES)}

    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda number, frame: stop.set())
    started: list[Service] = []
    try:
        idp = idp_command()
        environment = provider_environment(arguments.host, ports)
        report = prepare(idp, environment)
        deadline = time.monotonic() + arguments.ready_timeout
        viewer_key_file = next(client["client_key_file"] for client in report["clients"] if client.get("client_key_file"))
        for service in services(idp, arguments.host, ports, viewer_key_file):
            if stop.is_set():
                break
            service.log = log_dir / (service.name.lower().replace(" ", "-") + ".log")
            with service.log.open("w", encoding="utf-8") as log:
                service.process = subprocess.Popen(service.command, env=environment, preexec_fn=die_with_the_launcher,
                                                   stdout=log, stderr=subprocess.STDOUT)
            started.append(service)
            wait_until_answering(service, deadline, stop)
        if not stop.is_set():
            print(summary(started, report, f"http://{arguments.host}:{ports['idp']}", log_dir), flush=True)
        while not stop.wait(0.5):
            ended = next((service for service in started if service.process.poll() is not None), None)
            # On Ctrl-C the terminal signals the services too: one may end just before we hear of it.
            if ended is not None and not stop.wait(1):
                raise LaunchFailed(f"{ended.name} stopped unexpectedly (status {ended.process.returncode}); the end of "
                                   f"{ended.log}:\n{ended.log_tail()}")
    except LaunchFailed as error:
        print(f"demo stopped: {error}", file=sys.stderr, flush=True)
        stop_all(started)
        return 1
    stop_all(started)
    print("Demo stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
