"""The Node.js reference, measured side by side: panva's oidc-provider (npm) on the same machine.

``make bench`` installs it into the gitignored ``bench/nodejs/node_modules`` with ``npm install``
(exact version in bench/nodejs/package.json), starts one process per core beside the IdP, and
drives the same load generator at its client-credentials grant and at its JWKS and discovery
documents right after the IdP's run of the same scenario, reading the CPU it used the same way.
Measured in turn like this, both see the same machine: the ratio holds when the machine's speed
drifts, which absolute figures on a shared machine do not.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import requests

from bench.cluster import free_port, wait_until

NODEJS = Path(__file__).resolve().parent / "nodejs"
SCENARIOS = ("client_credentials", "jwks_discovery")
# Issue 15's targets: the IdP's figure per core over the reference's, in the same run.
RATIO_TARGETS = {"client_credentials": 0.5, "jwks_discovery": 0.8}


def install() -> None:
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("make bench needs Node.js and npm for the reference (or BENCH_ARGS=--no-reference)")
    if not (NODEJS / "node_modules" / "oidc-provider").is_dir():
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=NODEJS, check=True, timeout=600)


class Reference:
    """The running reference provider: :meth:`measure` one scenario at peak, then :meth:`stop`."""

    def __init__(self, folder: Path):
        install()
        self.port, self.secret = free_port(), secrets.token_urlsafe(32)
        self.workers = os.cpu_count() or 1
        environment = {**os.environ, "PORT": str(self.port), "WORKERS": str(self.workers), "CLIENT_SECRET": self.secret,
                       "NODE_ENV": "production"}
        self.log = open(folder / "nodejs.log", "ab")
        self.process = subprocess.Popen(["node", "provider.mjs"], cwd=NODEJS, env=environment, stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{self.port}/.well-known/openid-configuration", timeout=2).ok,
                       "the Node.js reference provider")
        except BaseException:
            self.stop()
            raise
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        self.description = f"oidc-provider 9.13.3 (Node.js {node}), {self.workers} processes, in-memory, RS256 JWT access tokens"

    def measure(self, scenario: str, connections: int, duration: float, folder: Path) -> dict:
        from bench.run import peak_of  # the same load generator and CPU accounting

        plan = {"host": "127.0.0.1", "port": self.port, "duration": duration, "connections": connections, "scenario": scenario,
                "data": {"machine": {"client_id": "machine", "secret": self.secret}, "jwks_path": "/jwks"}}
        return peak_of(self.process.pid, plan, {**plan, "duration": 60}, folder)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()
