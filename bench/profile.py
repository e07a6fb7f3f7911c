"""Where the time goes: py-spy samples the IdP's workers during a peak run (``--profile``).

py-spy (pinned in the test extras) attaches to the gunicorn master and
its workers from outside, so the IdP runs unchanged. The collapsed stacks are summarised as the
share of samples in which each function is on the stack (inclusive) and at the top (self).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("bench --profile needs py-spy: .venv/bin/pip install py-spy")
    return found


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen:
    return subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "250",
                             "--nonblocking", "--gil", "--duration", str(max(1, int(seconds))), "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def summary(path: Path, top: int = 30) -> dict:
    inclusive, exclusive, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_name(frame) for frame in stack.split(";") if not frame.startswith("process ")]
        # Idle threads waiting for a connection are not work.
        if frames and any(idle in frames[-1] for idle in ("select (selectors.py)", "wait (threading.py)", "poll (selectors.py)")):
            continue
        samples = int(count)
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            exclusive[frames[-1]] += samples
    share = lambda counter: [[name, round(100 * samples / total, 1)] for name, samples in counter.most_common(top)] if total else []
    return {"samples": total, "inclusive_percent": share(inclusive), "self_percent": share(exclusive)}
