"""The Node.js reference, measured side by side: panva's oidc-provider (npm) on the same machine.

``python -m bench.run --reference`` installs it into the gitignored ``bench/nodejs/node_modules``
with ``npm install`` (exact version in bench/nodejs/package.json), starts one process per core,
and drives the same load generator at its client-credentials grant and at its JWKS and
discovery documents, reading the CPU it used the same way as for the IdP.
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


def install() -> None:
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("bench --reference needs Node.js and npm")
    if not (NODEJS / "node_modules" / "oidc-provider").is_dir():
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=NODEJS, check=True, timeout=600)


def compare(folder: Path, duration: float) -> dict:
    """Peak client-credentials and JWKS/discovery figures of the reference provider."""
    from bench.run import drive, tree_cpu  # the same load generator and CPU accounting

    install()
    port, secret = free_port(), secrets.token_urlsafe(32)
    environment = {**os.environ, "PORT": str(port), "WORKERS": str(os.cpu_count() or 1), "CLIENT_SECRET": secret,
                   "NODE_ENV": "production"}
    with open(folder / "nodejs.log", "ab") as log:
        process = subprocess.Popen(["node", "provider.mjs"], cwd=NODEJS, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2).ok,
                   "the Node.js reference provider")
        base = {"host": "127.0.0.1", "port": port, "duration": duration, "connections": 12,
                "data": {"machine": {"client_id": "machine", "secret": secret}, "jwks_path": "/jwks"}}
        results = {}
        for scenario in ("client_credentials", "jwks_discovery"):
            before = tree_cpu(process.pid)
            result, generator_cpu = drive({**base, "scenario": scenario}, folder)
            used = tree_cpu(process.pid) - before
            results[scenario] = {"rate": round(result["operations"] / result["elapsed"], 1), "cores_used": round(used / result["elapsed"], 2),
                                 "per_core": round(result["operations"] / used, 1) if used else None, "errors": result["errors"],
                                 "error_samples": result["error_samples"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                                 "load_generator_cores_used": round(generator_cpu / result["elapsed"], 2)}
        return {"provider": "oidc-provider 9.13.3 (Node.js " + subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
                + f"), {environment['WORKERS']} processes, in-memory, RS256 JWT access tokens", **results}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
