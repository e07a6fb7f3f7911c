"""``make run``'s entry point: every service answers on its port, and SIGTERM stops them all."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.support.browser import REPO_ROOT

HEALTH = {
    "Identity provider": "/.well-known/openid-configuration",
    "DSP API": "/",
    "DSP viewer": "/",
    "MyGuichet sandbox": "/saml/metadata",
    "LuxTrust sandbox": "/saml/metadata",
}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def answering(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.ConnectionError:
        return False


def start_launcher(tmp_path, idp: int, viewer: int, api: int, myguichet: int, luxtrust: int) -> subprocess.Popen:
    """``make run``'s command, on the given ports, with its database in ``tmp_path``.

    In a session of its own: :func:`end` can then stop the services too if the launcher does not.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    environment["IDP_INSTANCE_PATH"] = str(tmp_path)
    return subprocess.Popen(
        [sys.executable, "-m", "rp_demo.launcher", "--idp-port", str(idp), "--viewer-port", str(viewer), "--api-port", str(api),
         "--myguichet-port", str(myguichet), "--luxtrust-port", str(luxtrust)],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def end(launcher: subprocess.Popen) -> None:
    """After a failed assertion: SIGKILL to the launcher's whole process group, services included."""
    try:
        os.killpg(launcher.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    launcher.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_launcher_starts_every_service_and_stops_them_cleanly(tmp_path, stop_signal):
    idp, viewer, api, myguichet, luxtrust = free_ports(5)
    launcher = start_launcher(tmp_path, idp, viewer, api, myguichet, luxtrust)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while "Ready.\n" not in lines and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        output = "".join(lines)
        assert "Ready.\n" in lines, output

        printed = dict(re.findall(r"^  (\S.*?)\s{2,}(http://127\.0\.0\.1:\d+)$", output, re.MULTILINE))
        assert printed == {
            "Identity provider": f"http://127.0.0.1:{idp}", "DSP API": f"http://127.0.0.1:{api}",
            "DSP viewer": f"http://127.0.0.1:{viewer}", "MyGuichet sandbox": f"http://127.0.0.1:{myguichet}",
            "LuxTrust sandbox": f"http://127.0.0.1:{luxtrust}",
        }
        for name, url in printed.items():
            assert requests.get(url + HEALTH[name], timeout=10).status_code == 200, name
        assert requests.get(f"http://127.0.0.1:{idp}/.well-known/openid-configuration", timeout=10).json()["issuer"] == f"http://127.0.0.1:{idp}"
        assert requests.get(f"http://127.0.0.1:{api}/", timeout=10).json()["audience"] == f"http://127.0.0.1:{api}"
        assert requests.get(f"http://127.0.0.1:{idp}/dev/outbox", timeout=10).status_code == 200

        assert re.search(r"Hector Doe\s+matricule \d{13}\s+active\s+password Sante-Demo-2026", output)
        assert re.search(r"Rita Doe\s+matricule \d{13}\s+pending\s+activation code \S+", output)
        assert re.search(r"Filat D\.\s+matricule \d{13}\s+pending\s+activation code \S+", output)
        # Issue 14, item 15: a person for each walk-through scenario, the README's commands, the summary last.
        claire = re.search(r"Claire Weber\s+matricule (\d{13})\s+pending", output)
        assert claire, output
        assert f"letters render {claire.group(1)} --output letters.pdf" in output
        assert "MyGuichet.lu (sandbox citizen mg-filat)" in output
        assert "-m rp_demo.mydsp" in output and "outbox list" in output and "requests list" in output
        time.sleep(2)  # the services keep running and answering: none of them writes to the terminal
        requests.get(f"http://127.0.0.1:{idp}/login", timeout=10)
        assert lines[-1] == "Ready.\n", lines[-5:]
        assert (tmp_path / "demo-logs" / "identity-provider.log").stat().st_size > 0

        launcher.send_signal(stop_signal)
        assert launcher.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert "Demo stopped.\n" in lines
        for url in printed.values():
            assert not answering(url), f"{url} still answers after the stop"
    finally:
        end(launcher)


def test_a_service_that_cannot_start_stops_the_whole_demo(tmp_path):
    idp, viewer, api, myguichet, luxtrust = free_ports(5)
    with socket.socket() as taken:  # something else already holds the viewer's port
        taken.bind(("127.0.0.1", viewer))
        taken.listen()
        launcher = start_launcher(tmp_path, idp, viewer, api, myguichet, luxtrust)
        try:
            output, _ = launcher.communicate(timeout=180)
        finally:
            end(launcher)
    assert launcher.returncode == 1
    assert "demo stopped: DSP viewer exited with status" in output
    assert "Ready." not in output
    for port in (idp, api):
        assert not answering(f"http://127.0.0.1:{port}"), f"port {port} still answers"


def test_make_run_installs_what_the_demo_needs_and_quiets_the_install():
    """Issue 14, items 2 and 15: xmlsec1 (SAML for MyGuichet/LuxTrust) comes with `make run`, not only with
    `make test`; pip's output goes to a log."""
    planned = subprocess.run(["make", "-n", "run"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60).stdout
    commands = [line for line in planned.splitlines() if line.strip()]
    deps = next(i for i, line in enumerate(commands) if "scripts/system-deps.sh --demo" in line)
    assert deps < next(i for i, line in enumerate(commands) if "rp_demo.launcher" in line)
    script = (REPO_ROOT / "scripts" / "system-deps.sh").read_text()
    demo_packages = re.search(r'if \[ "\$\{1:-\}" = --demo \]; then\s+PACKAGES=\(([^)]*)\)', script).group(1).split()
    assert "xmlsec1" in demo_packages
    makefile = (REPO_ROOT / "Makefile").read_text()
    stamp_rule = makefile[makefile.index("$(STAMP):"):makefile.index("system-deps:")]
    assert ">$(VENV)/install.log 2>&1" in stamp_rule


def test_the_data_folders_are_packages_so_setuptools_does_not_warn(tmp_path):
    """Issue 14, item 15: setuptools warns "Package 'idp.data' is absent from the `packages`
    configuration" for each folder of package data that `packages` does not list."""
    from setuptools.config.setupcfg import read_configuration

    packages = set(read_configuration(REPO_ROOT / "setup.cfg")["options"]["packages"])
    data_folders = {".".join(path.relative_to(REPO_ROOT).parts) for root in ("idp", "rp_demo")
                    for path in (REPO_ROOT / root).rglob("*") if path.is_dir() and path.name != "__pycache__"
                    and any(child.is_file() and child.suffix != ".pyc" for child in path.iterdir())}
    assert data_folders - packages == set()
    built = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "egg_info", "--egg-base", str(tmp_path)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    sources = (next(tmp_path.glob("*.egg-info")) / "SOURCES.txt").read_text()
    assert "idp/data/cgu/2024-1.fr.txt" in sources and "rp_demo/translations/de/LC_MESSAGES/messages.mo" in sources
