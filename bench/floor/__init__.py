"""Running the floor (:mod:`bench.floor.app`) beside the IdP: ``make bench BENCH_ARGS=--floor``.

The same server as production (granian, WSGI, the same workers and threads per worker as
``idp serve``), the same PostgreSQL, the same load generator; each machine scenario right after
the IdP's, like the Node.js reference. The floor's patients and token families are made through
its set-up endpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import requests
from joserfc.jwk import RSAKey

from bench.cluster import ROOT, free_port, wait_until
from idp import server

SCENARIOS = ("refresh", "client_credentials", "userinfo", "introspection", "jwks_discovery")
SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_account (id bigserial PRIMARY KEY, sub text, given_name text, family_name text, email text);
CREATE TABLE IF NOT EXISTS floor_token (id bigserial PRIMARY KEY, jti text UNIQUE, family text, client_id text, account_id bigint,
    scope text, exp bigint, refresh_hash text UNIQUE, rotated_at timestamptz, revoked_at timestamptz);
CREATE TABLE IF NOT EXISTS floor_audit (id bigserial PRIMARY KEY, name text, client_id text, account_id bigint, at timestamptz, details jsonb);
"""


def create_schema(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(SCHEMA)


class Floor:
    def __init__(self, database_url: str, folder: Path, workers: int, families: int):
        dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        create_schema(dsn)
        self.port, self.secret = free_port(), secrets.token_urlsafe(32)
        threads = str(server.THREADS_PER_WORKER)
        key = json.dumps(RSAKey.generate_key(2048, private=True, parameters={"kid": "floor"}).as_dict(private=True))
        environment = {**os.environ, "FLOOR_DSN": dsn, "FLOOR_KEY": key, "FLOOR_CLIENT_ID": "floor", "FLOOR_CLIENT_SECRET": self.secret,
                       "FLOOR_ISSUER": f"http://127.0.0.1:{self.port}"}
        self.log = open(folder / "floor.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(workers),
                                         "--blocking-threads", threads, "--http", "1", "--no-ws", "--host", "127.0.0.1",
                                         "--port", str(self.port), "bench.floor.app:app"],
                                        cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{self.port}/jwks.json", timeout=2).ok, "the floor program")
            self.tokens = requests.post(f"http://127.0.0.1:{self.port}/seed", params={"count": families}, timeout=120).json()["tokens"]
        except BaseException:
            self.stop()
            raise

    def plan(self, scenario: str, connections: int, duration: float, tokens: list[dict]) -> dict:
        credentials = {"client_id": "floor", "secret": self.secret}
        return {"host": "127.0.0.1", "port": self.port, "duration": duration, "connections": connections, "scenario": scenario,
                "data": {"machine": credentials, "rp": credentials, "tokens": tokens}}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()
