"""A production-shaped deployment on loopback: PostgreSQL, Redis, IdP instances, nginx.

The benchmark and the scale-out tests (tests/ops/) both run the IdP the way operators do:
``idp serve --bind HOST:PORT`` behind a round-robin nginx, sharing one PostgreSQL and one
Redis. Everything is private to the caller: its own services on free ports (started with
scripts/test-services.sh and a private state folder, so the suite's shared services are never
touched), its own temporary folders, and only the processes it started are stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
IDP_COMMAND = [sys.executable, "-c", "from idp.cli import main; main()"]  # the ``idp`` console script
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class ClusterError(RuntimeError):
    """A part of the deployment did not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise ClusterError(f"{what} not ready after {timeout:.0f}s")


@dataclass
class Services:
    """A throwaway PostgreSQL + Redis (scripts/test-services.sh with a private state folder)."""

    state_dir: Path
    database_url: str = ""
    redis_url: str = ""

    def _script(self, command: str) -> str:
        environment = {**os.environ, "IDP_TEST_SERVICES_STATE_DIR": str(self.state_dir)}
        done = subprocess.run([str(ROOT / "scripts" / "test-services.sh"), command], env=environment,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ClusterError(f"test-services.sh {command} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> Services:
        for line in self._script("start").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            if name == "IDP_TEST_DATABASE_URL":
                self.database_url = value
            elif name == "IDP_TEST_REDIS_URL":
                self.redis_url = value
        if not (self.database_url and self.redis_url):
            raise ClusterError("test-services.sh printed no URLs")
        return self

    def stop(self) -> None:
        self._script("stop")


def idp_environment(services: Services, issuer: str, instance_path: Path, **settings: str) -> dict[str, str]:
    """The ``IDP_*`` variables every instance of one deployment shares (secrets included)."""
    shared = {
        "IDP_ISSUER": issuer,
        "IDP_DATABASE_URL": services.database_url,
        "IDP_REDIS_URL": services.redis_url,
        "IDP_INSTANCE_PATH": str(instance_path),
        "IDP_SECRET_KEY": secrets.token_urlsafe(32),
        "IDP_PAIRWISE_SALT": secrets.token_urlsafe(32),
        "IDP_KEY_ENCRYPTION_KEYS": secrets.token_urlsafe(32),
        "IDP_TRUSTED_PROXY_COUNT": "1",
    }
    shared.update({f"IDP_{name}": value for name, value in settings.items()})
    return shared


def run_idp(environment: dict[str, str], *arguments: str) -> str:
    """Run the ``idp`` command (migrations, key rotation) against the deployment's database."""
    command = [*IDP_COMMAND, *arguments]
    done = subprocess.run(command, env={**os.environ, **environment},
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ClusterError(f"idp {' '.join(arguments)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


@dataclass
class Instance:
    """One ``idp serve --bind 127.0.0.1:PORT [--workers N]`` process tree (the server and its workers)."""

    environment: dict[str, str]
    folder: Path
    workers: int | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"idp-{self.port}.log"

    @property
    def metrics_dir(self) -> Path:
        return self.folder / f"metrics-{self.port}"

    def start(self) -> Instance:
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        command = [*IDP_COMMAND, "serve", "--bind", f"127.0.0.1:{self.port}"]
        if self.workers:
            command += ["--workers", str(self.workers)]
        environment = {**os.environ, **self.environment, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            wait_until(self._ready, f"idp serve on {self.url} (log: {self.log_path})")
        except ClusterError:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise ClusterError(f"idp serve exited ({self.process.returncode}):\n{self.log_path.read_text()[-3000:]}")
        return requests.get(self.url + "/readyz", timeout=2).status_code == 200

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: the server stops its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


NGINX_CONFIG = """\
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream idp {{
        {servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://idp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    """nginx from Debian's package, round-robin over the instances, with its own prefix."""

    prefix: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, instances: list[Instance]) -> Balancer:
        self.prefix.mkdir(parents=True, exist_ok=True)
        config = self.prefix / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(
            user="user root;\n" if os.geteuid() == 0 else "",  # workers must reach the temp folders
            prefix=self.prefix, port=self.port,
            servers="\n        ".join(f"server 127.0.0.1:{instance.port};" for instance in instances),
        ))
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(config), "-e", str(self.prefix / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def ready() -> bool:
            if self.process.poll() is not None:
                raise ClusterError(f"nginx exited:\n{(self.prefix / 'error.log').read_text()[-2000:]}")
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200

        wait_until(ready, f"nginx on {self.url}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def temporary_folder(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder
