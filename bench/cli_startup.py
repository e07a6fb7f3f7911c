"""How long the ``idp`` command takes to start: ``python -m bench.cli_startup``.

Each command runs as a whole process, once to warm the disk cache and the bytecode, then
``--runs`` times; the median wall and CPU seconds (user + system, from the kernel's accounting
of the finished child) are printed per command, with the minimum and maximum beside them. The
target (issue 14) is under a second for ``idp --help`` and ``idp outbox list``; on a shared
machine quote the CPU figure, which the other load moves less than the wall time.

It uses a throwaway instance folder (SQLite, migrated first), so it never reads a real outbox.
Nothing here passes or fails: the figures are reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (("--help",), ("outbox", "list"), ("outbox", "list", "--json"))


def timed_run(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idp", default=str(Path(sys.executable).with_name("idp")), help="the idp script to time")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-cli-bench-") as instance:
        environment = {**os.environ, "IDP_INSTANCE_PATH": instance}
        environment.pop("IDP_CONFIG", None)
        subprocess.run([arguments.idp, "db", "upgrade"], env=environment, capture_output=True, check=True)
        print(f"{'command':<28} {'wall s (min / median / max)':>30} {'cpu s (min / median / max)':>30}")
        for words in COMMANDS:
            command = [arguments.idp, *words]
            timed_run(command, environment)  # warm-up
            walls, cpus = zip(*(timed_run(command, environment) for _ in range(arguments.runs)))
            figures = [f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}" for values in (walls, cpus)]
            print(f"{'idp ' + ' '.join(words):<28} {figures[0]:>30} {figures[1]:>30}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
