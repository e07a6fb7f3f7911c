"""The benchmark: ``make bench`` (or ``python -m bench.run``).

It starts its own PostgreSQL and Redis on loopback and one IdP instance the way production runs
it (``idp serve``, workers from the cores, JSON access log on, Redis rate limits on the path),
seeds patients and clients, then drives each scenario from a second
process (:mod:`bench.load`) twice: as fast as it goes (peak), then at 70% of that peak on a fixed
schedule (the latency figures). For each run it reads the CPU time the IdP's processes (and
PostgreSQL and Redis) used, so "per core" means per core actually used, and the peak resident
memory of each worker. It also times one argon2id hash at the configured parameters (the
hashing floor of a login). Then, unless ``--no-reference``, it measures the Node.js reference
provider (:mod:`bench.reference`) with the same load generator and prints the ratios. Results go
to ``bench/results/`` as JSON and a Markdown table; ``docs/performance.md`` keeps the latest
figures.

Nothing here is a pass/fail test: the figures are reported, with the targets beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import profile as profiling, reference as node_reference
from bench.floor import SCENARIOS as FLOOR_SCENARIOS, Floor
from bench.cluster import ROOT, Instance, Services, free_port, idp_environment, run_idp, temporary_folder

RESULTS = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")
PATIENTS = 200
PASSWORD = "Bench-Sante-2026"
REDIRECT_URI = "https://dsp.example.lu/callback"
DSP_API_AUDIENCE = "https://api.dsp.example.lu/"

# (scenario, connections at peak, what one operation is, target per core used)
SCENARIOS = [
    ("login", 6, "full patient login (8 HTTP requests)", None),
    ("refresh", 12, "refresh grant with rotation", 400),
    ("client_credentials", 12, "client-credentials grant", 400),
    ("userinfo", 12, "userinfo", 800),
    ("introspection", 12, "introspection", 800),
    ("jwks_discovery", 12, "JWKS and discovery, alternating", 2000),
]
# Load the bench generates from 127.0.0.1: per-IP limits would stop it, so they are raised; the
# limiter still counts every request in Redis, as in production.
BENCH_SETTINGS = {
    "RATE_LIMIT_LOGIN": "1000000 per minute",
    "RATE_LIMIT_ONE_TIME_CODE": "1000000 per minute",
    "RATE_LIMIT_TOKEN": "1000000 per minute",
    "ACCESS_TOKEN_TTL": "3600",  # tokens minted at the start serve the later scenarios
    "TRUSTED_PROXY_COUNT": "0",
}


# --- processes and their resources ---------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int, with_reaped_children: bool) -> float:
    """User + system CPU of ``pid`` (and of its children already reaped, when asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def tree_cpu(root: int) -> float:
    """CPU of a server (master + live workers + workers that already exited)."""
    return _cpu_seconds(root, True) + sum(_cpu_seconds(child, False) for child in _children(root))


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryWatch(threading.Thread):
    """Samples every worker's peak RSS (VmHWM) while a run goes; workers may be recycled."""

    def __init__(self, instance: Instance):
        super().__init__(daemon=True)
        self.instance, self.peak, self.stopped = instance, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for pid in self.instance.worker_pids():
            self.peak = max(self.peak, peak_rss_mib(pid))

    def stop(self) -> float:
        self.stopped.set()
        self.join()
        self.sample()
        return round(self.peak, 1)


def _service_pids(services: Services) -> dict[str, int]:
    state = dict(line.split("=", 1) for line in (services.state_dir / "state").read_text().splitlines() if "=" in line)
    work = Path(state["WORK"].strip("'"))
    return {"postgresql": int((work / "pg" / "data" / "postmaster.pid").read_text().split()[0]),
            "redis": int((work / "redis" / "redis.pid").read_text().strip())}


# --- the deployment ------------------------------------------------------------------------------


def seed(environment: dict[str, str], patients: int) -> dict:
    """Patients with a mobile (the code goes by SMS), the DSP viewer and a machine client."""
    from idp import account as accounts, client as clients, clock, create_app, credential, matricule
    from idp.extensions import db

    app = create_app({key.removeprefix("IDP_"): value for key, value in environment.items()})
    with app.app_context():
        password_hash = credential.hash_password(PASSWORD)  # one hash, the same for all: seeding stays quick
        seeded = []
        for number in range(patients):
            value = matricule.with_check_digits(f"19800101{number:03d}")
            now = clock.now()
            account = accounts.Account(subject=secrets.token_urlsafe(24), matricule=value, family_name="Bench", given_name=f"Patient {number}",
                                       birth_date=datetime(1980, 1, 1).date(), email=None, mobile=f"+352621{number:06d}",
                                       status="active", created_at=now, updated_at=now)
            db.session.add(account)
            db.session.flush()
            credential.set_password_hash(account, password_hash)
            seeded.append({"matricule": value, "password": PASSWORD, "mobile": account.mobile})
        # As deployed: the viewer's access tokens are for the DSP API, which alone may introspect them (RFC 7662 §4).
        viewer, viewer_secret = clients.create(name="DSP viewer (bench)", redirect_uris=[REDIRECT_URI], first_party=True,
                                               scope="openid profile offline_access",
                                               extra_metadata={"access_token_audiences": [DSP_API_AUDIENCE]})
        machine, machine_secret = clients.create(name="DSP API (bench)", grant_types=["client_credentials"], scope="openid",
                                                 resource_audience=DSP_API_AUDIENCE)
        db.session.commit()
        data = {"patients": seeded, "rp": {"client_id": viewer.client_id, "secret": viewer_secret, "redirect_uri": REDIRECT_URI},
                "machine": {"client_id": machine.client_id, "secret": machine_secret}}
        db.session.remove()
        db.engine.dispose()
    return data


def hashing_floor(environment: dict[str, str], rounds: int = 15) -> float:
    """CPU seconds of one argon2id hash at the configured parameters (median), before the load."""
    from idp import create_app, credential

    app = create_app({key.removeprefix("IDP_"): value for key, value in environment.items()})
    with app.app_context():
        credential.hash_password("warm-up-1")
        timings = []
        for _ in range(rounds):
            # CPU time, like the login's cost it is compared with: on a shared machine the wall
            # time of a hash also counts the time other processes had the core.
            started = time.thread_time()
            credential.hash_password("Bench-Sante-2026")
            timings.append(time.thread_time() - started)
        parameters = {name: app.config[name] for name in ("ARGON2_MEMORY_COST", "ARGON2_TIME_COST", "ARGON2_PARALLELISM")}
    return statistics.median(timings), parameters


# --- runs ----------------------------------------------------------------------------------------


def drive(plan: dict, folder: Path) -> tuple[dict, float]:
    """Run the load generator in its own process; returns its result and its CPU seconds."""
    path = folder / f"plan-{plan['scenario']}.json"
    path.write_text(json.dumps(plan))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "bench.load", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=plan["duration"] + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout), cpu


def peak_of(pid: int, plan: dict, warm_up: dict, folder: Path) -> dict:
    """A program other than the IdP (the reference, the floor) at peak: ``warm_up`` (its own token
    families), then ``plan``, with the CPU of its process tree read the same way as the IdP's."""
    drive({**warm_up, "operations": warm_up["connections"] * 20}, folder)
    before = tree_cpu(pid)
    result, generator_cpu = drive(plan, folder)
    used = tree_cpu(pid) - before
    return {"rate": round(result["operations"] / result["elapsed"], 1), "cores_used": round(used / result["elapsed"], 2),
            "per_core": round(result["operations"] / used, 1) if used else None, "errors": result["errors"],
            "error_samples": result["error_samples"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "load_generator_cores_used": round(generator_cpu / result["elapsed"], 2)}


def measure(instance: Instance, services: dict[str, int], plan: dict, folder: Path, profile: Path | None = None) -> dict:
    watch = MemoryWatch(instance)
    watch.start()
    sampler = profiling.record(instance.process.pid, plan["duration"], profile) if profile else None
    idp_before = tree_cpu(instance.process.pid)
    others_before = sum(tree_cpu(pid) for pid in services.values())
    result, generator_cpu = drive(plan, folder)
    if sampler:
        sampler.wait(timeout=60)
        result["profile"] = profiling.summary(profile)
    idp_cpu = tree_cpu(instance.process.pid) - idp_before
    backing_cpu = sum(tree_cpu(pid) for pid in services.values()) - others_before
    elapsed = result["elapsed"]
    operations = result["operations"]
    return {
        **result,
        "rate": round(operations / elapsed, 1),
        "idp_cores_used": round(idp_cpu / elapsed, 2),
        "per_idp_core": round(operations / idp_cpu, 1) if idp_cpu else None,
        "per_core_with_postgresql_redis": round(operations / (idp_cpu + backing_cpu), 1) if idp_cpu else None,
        "idp_cpu_ms_per_operation": round(idp_cpu / operations * 1000, 2) if operations else None,
        "postgresql_redis_cores_used": round(backing_cpu / elapsed, 2),
        "load_generator_cores_used": round(generator_cpu / elapsed, 2),
        "peak_rss_per_worker_mib": watch.stop(),
    }


def _granian_version() -> str:
    from importlib.metadata import version

    return version("granian")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory / 1024 / 1024, 1), "kernel": platform.release(),
            "python": platform.python_version()}


def run(duration: float, scenarios: list[str], reference: bool, profile: bool, with_floor: bool = False) -> dict:
    load_at_start = os.getloadavg()
    folder = temporary_folder("idp-bench-")
    services = Services(folder / "services").start()
    instance = node = floor_program = None
    try:
        port = free_port()
        environment = idp_environment(services, f"http://127.0.0.1:{port}", folder / "instance", **BENCH_SETTINGS)
        run_idp(environment, "db", "upgrade")
        floor, parameters = hashing_floor(environment)
        data = {**seed(environment, PATIENTS), "database_url": services.database_url.replace("postgresql+psycopg://", "postgresql://")}
        instance = Instance(environment, folder, port=port).start()
        for path in ("/jwks.json", "/.well-known/openid-configuration", "/readyz"):
            requests.get(instance.url + path, timeout=30)
        backing = _service_pids(services)
        base = {"host": "127.0.0.1", "port": port, "duration": duration, "data": data}
        needed = 6 * max(connections for _, connections, *_ in SCENARIOS)
        minted, _ = drive({**base, "scenario": "tokens", "connections": 4, "duration": 120, "operations": needed}, folder)
        pool = minted["tokens"]
        if reference:
            node = node_reference.Reference(folder)
        if with_floor:
            floor_program = Floor(services.database_url, folder, len(instance.worker_pids()), needed)
        results, reference_results, floor_results = {}, {}, {}
        for name, connections, what, target in SCENARIOS:
            if name not in scenarios:
                continue
            # Disjoint token families per run: a refresh token is good for one rotation chain.
            peak_data = {**data, "tokens": pool[:connections]}
            steady_data = {**data, "tokens": pool[connections:connections * 5]}
            if len(steady_data["tokens"]) < connections * 4:
                raise RuntimeError(f"only {len(pool)} token families minted")
            # Warm-up, not measured: every worker compiles its templates, opens its pool, loads its keys.
            drive({**base, "data": {**data, "tokens": pool[connections * 5:connections * 6]}, "scenario": name,
                   "connections": connections, "operations": connections * 3, "duration": 60}, folder)
            print(f"bench: {name} at peak ({connections} connections, {duration:.0f}s)", file=sys.stderr)
            peak = measure(instance, backing, {**base, "data": peak_data, "scenario": name, "connections": connections}, folder,
                           RESULTS / f"profile-{name}.txt" if profile else None)
            print(f"bench: {name} at 70% of {peak['rate']}/s", file=sys.stderr)
            steady = measure(instance, backing, {**base, "data": steady_data, "scenario": name, "connections": connections * 4,
                                                 "rate": max(1.0, 0.7 * peak["rate"])}, folder)
            for measured in (peak, steady):
                measured.pop("tokens", None)
            results[name] = {"what": what, "target_per_core": target, "peak": peak, "at_70_percent": steady}
            if node and name in node_reference.SCENARIOS:
                print(f"bench: {name} on the Node.js reference", file=sys.stderr)
                reference_results[name] = node.measure(name, connections, duration, folder)
            if floor_program and name in FLOOR_SCENARIOS:
                print(f"bench: {name} on the floor program", file=sys.stderr)
                tokens = floor_program.tokens
                floor_results[name] = peak_of(floor_program.process.pid, floor_program.plan(name, connections, duration, tokens[:connections]),
                                              floor_program.plan(name, connections, 60, tokens[connections:connections * 2]), folder)
        login = results.get("login")
        if login:
            per_core_floor = 1 / floor
            login["hashing_floor_per_core"] = round(per_core_floor, 1)
            login["percent_of_floor"] = round(100 * login["peak"]["per_idp_core"] / per_core_floor, 1)
            login["cost_relative_to_one_hash"] = round(login["peak"]["idp_cpu_ms_per_operation"] / (floor * 1000), 2)
        worker_count = len(instance.worker_pids())
        report = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {**machine(), "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
            "deployment": {"workers": worker_count, "server": "idp serve (granian " + _granian_version() + ")",
                           "postgresql_and_redis": "same machine, loopback (scripts/test-services.sh: fsync off)",
                           "duration_per_run_seconds": duration},
            "hashing_floor": {"argon2id": parameters, "ms_per_hash": round(floor * 1000, 2), "hashes_per_second_per_core": round(1 / floor, 1)},
            "scenarios": results,
        }
        if node:
            report["nodejs_reference"] = {"provider": node.description, **reference_results}
        if floor_program:
            report["floor"] = floor_results
    except BaseException:
        print(f"bench: failed; logs kept in {folder}", file=sys.stderr)
        raise
    finally:
        if floor_program:
            floor_program.stop()
        if node:
            node.stop()
        if instance:
            instance.stop()
        services.stop()  # before the folder goes: the services' state file is in it
    shutil.rmtree(folder, ignore_errors=True)
    return report


def markdown(report: dict) -> str:
    floor = report["hashing_floor"]
    lines = [
        f"Benchmark of {report['date']} on {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB; {report['deployment']['server']}, {report['deployment']['workers']} workers; "
        f"{report['deployment']['duration_per_run_seconds']:.0f} s per run; load average "
        f"{report['machine']['load_average_at_start'][0]:.1f} at the start, {report['machine']['load_average_at_end'][0]:.1f} at the end "
        "(above 0 means other work shared the machine).",
        "",
        f"Hashing floor: one argon2id hash (m={floor['argon2id']['ARGON2_MEMORY_COST']} KiB, t={floor['argon2id']['ARGON2_TIME_COST']}, "
        f"p={floor['argon2id']['ARGON2_PARALLELISM']}) takes {floor['ms_per_hash']} ms of CPU: {floor['hashes_per_second_per_core']} per second per core.",
        "",
        "| scenario | peak /s | IdP cores used | /s per IdP core | /s per core incl. PostgreSQL+Redis | target per core | "
        "p50 / p99 at 70% (ms) | errors | peak RSS per worker (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in report["scenarios"].items():
        peak, steady = result["peak"], result["at_70_percent"]
        target = result["target_per_core"]
        if name == "login":
            target = f"{0.5 * result['hashing_floor_per_core']:.1f} (one hash + one: 50% of the floor)"
        lines.append(f"| {result['what']} | {peak['rate']} | {peak['idp_cores_used']} | {peak['per_idp_core']} | "
                     f"{peak['per_core_with_postgresql_redis']} | {target} | {steady['p50_ms']} / {steady['p99_ms']} | "
                     f"{peak['errors'] + steady['errors']} | {max(peak['peak_rss_per_worker_mib'], steady['peak_rss_per_worker_mib'])} |")
    if "login" in report["scenarios"]:
        login = report["scenarios"]["login"]
        lines += ["", f"Login: {login['peak']['idp_cpu_ms_per_operation']} ms of IdP CPU per login = {login['cost_relative_to_one_hash']}× one hash; "
                      f"{login['percent_of_floor']}% of the hashing floor."]
    if "nodejs_reference" in report:
        node = report["nodejs_reference"]
        lines += ["", f"Node.js reference, same machine, same load generator, each right after the IdP's run: {node['provider']}.", "",
                  "| scenario | reference peak /s | reference cores used | reference /s per core | IdP /s per core | IdP / reference | target | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name in node_reference.SCENARIOS:
            if name not in node:
                continue
            ours = report["scenarios"].get(name, {}).get("peak", {}).get("per_idp_core")
            theirs = node[name]["per_core"]
            ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
            target = node_reference.RATIO_TARGETS[name]
            met = "met" if ours and theirs and ours / theirs >= target else "missed"
            lines.append(f"| {name} | {node[name]['rate']} | {node[name]['cores_used']} | {theirs} | {ours} | {ratio} | "
                         f"≥ {target} ({met}) | {node[name]['errors']} |")
    if "floor" in report:
        lines += ["", "Floor program (bench/floor/: the same work without the IdP's framework layers), same server and database, "
                      "each right after the IdP's run:", "",
                  "| scenario | floor /s per core | IdP /s per core | IdP / floor | errors |", "|---|---:|---:|---:|---:|"]
        for name, measured in report["floor"].items():
            ours = report["scenarios"].get(name, {}).get("peak", {}).get("per_idp_core")
            theirs = measured["per_core"]
            ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
            lines.append(f"| {name} | {theirs} | {ours} | {ratio} | {measured['errors']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (two runs per scenario)")
    parser.add_argument("--scenarios", default=",".join(name for name, *_ in SCENARIOS), help="comma-separated")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the Node.js reference provider (measured by default, installed by npm)")
    parser.add_argument("--profile", action="store_true", help="sample the workers with py-spy during each peak run")
    parser.add_argument("--floor", action="store_true", help="also measure the floor program (bench/floor/) beside the IdP")
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `make bench`'s timeout: stop what was started
    RESULTS.mkdir(exist_ok=True)
    report = run(arguments.duration, arguments.scenarios.split(","), arguments.reference, arguments.profile, arguments.floor)
    stamp = re.sub(r"[^0-9T]", "", report["date"])[:15]
    for name in (f"bench-{stamp}", "latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))
    errors = sum(result[run]["errors"] for result in report["scenarios"].values() for run in ("peak", "at_70_percent"))
    if errors:
        print(f"bench: {errors} errors (must be 0); samples in {RESULTS / 'latest.json'}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
