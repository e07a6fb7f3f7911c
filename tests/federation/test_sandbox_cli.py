"""``idp sandbox run``: the stand-in the demo launcher starts, serving its metadata on the given port."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_idp_sandbox_run_serves_a_stand_in_with_its_own_keys(tmp_path):
    port = free_port()
    environment = {**os.environ, "IDP_INSTANCE_PATH": str(tmp_path), "IDP_SECRET_KEY": "k", "IDP_PAIRWISE_SALT": "s"}
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "idp:create_app", "sandbox", "run", "luxtrust", "--port", str(port)],
                               cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metadata = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/saml/metadata", timeout=2) as answer:
                    metadata = answer.read()
                break
            except OSError:
                time.sleep(0.2)
        assert metadata is not None, process.stdout.read() if process.poll() is not None else "no answer"
        document = etree.fromstring(metadata)
        assert document.get("entityID") == f"http://127.0.0.1:{port}/saml/metadata"
        key = tmp_path / "sandbox" / "luxtrust.key"
        assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sandbox_refuses_an_https_issuer(runner, app):
    app.config["ISSUER"] = "https://idp.esante.lu"
    result = runner.invoke(args=["sandbox", "run", "myguichet", "--port", "5010"])
    assert result.exit_code != 0 and "refusing on an https issuer" in result.output
