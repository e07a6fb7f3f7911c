"""``make bench`` keeps measuring answers, not refusals: each scenario runs briefly against an
``idp serve`` instance on PostgreSQL + Redis, as the bench deploys it, and every answer must be
the expected one. Issue 13 made introspection answer only the resource server a token is for;
the bench went on introspecting with the viewer's own credentials and measured 4,854 errors.
No figure is checked here (the bench reports figures, tests do not time anything)."""

from pathlib import Path

from bench.run import SCENARIOS, run


def database_and_cache_servers() -> set[tuple[int, str]]:
    """(pid, command line) of every PostgreSQL postmaster and Redis server on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if command.startswith("redis-server") or ("postgres" in command.split(" ")[0] and " -D " in command):
                found.add((int(entry.name), command))
    return found


def test_every_bench_scenario_gets_the_expected_answers():
    before = database_and_cache_servers()
    report = run(duration=1.0, scenarios=[name for name, *_ in SCENARIOS], reference=False, profile=False)
    # The bench's own PostgreSQL and Redis are stopped when it ends (they were left running).
    assert database_and_cache_servers() - before == set()
    assert set(report["scenarios"]) == {name for name, *_ in SCENARIOS}
    failures = {name: (phase, measured["errors"], measured.get("error_samples"))
                for name, result in report["scenarios"].items()
                for phase, measured in (("peak", result["peak"]), ("at 70%", result["at_70_percent"]))
                if measured["errors"] or not measured["operations"]}
    assert failures == {}
