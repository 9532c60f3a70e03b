"""The benchmark suite: our beat and admin beside celery-redbeat, sqlalchemy-celery-beat,
Celery's own PersistentScheduler and the embedded APScheduler mode, measured in one run.

    PYTHONPATH=. .venv/bin/python bench/suite.py            # make bench
    PYTHONPATH=. .venv/bin/python bench/suite.py --quick    # make bench-quick

Scenarios (--scenarios, comma-separated; all by default):
  change  change to effect: add, edit, pause, resume, with 0 / 10,000 / 100,000 other schedules
  burst   1,000 / 10,000 / 50,000 jobs due in the same second: time until all are published
  steady  schedules spread evenly over a period: lateness of each publish, the beat's CPU and RSS
  cold    start with 100,000 schedules: time to the first publish; then the catch-up after the
          beat was down 10 minutes (sends per job, per misfire policy)
  admin   the admin under load (bench/admin_bench.py): jobs page, search, pause / resume

Every scheduler runs as its own process against a private redis-server on a free loopback
port (the embedded one against its SQLite database); what it publishes is counted in the
broker (the runs table for the embedded mode), not inside the scheduler. Each scenario stores
its tables in bench/results/<scenario>.json; bench/RESULTS.md is rendered from all of them, so
one scenario can be measured again alone. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import beat_bench as bb  # noqa: E402
from bench.beat_bench import (  # noqa: E402
    Embedded, Latency, Ours, Persistent, RedBeat, log, ms, percentile, render_markdown, render_text,
)
from tests.processes import RedisServer, stop  # noqa: E402

SCENARIOS = ("change", "burst", "steady", "cold", "admin")
SYSTEMS = ("ours", "redbeat", "sqlalchemy-celery-beat", "persistent", "embedded")
# Which systems a scenario applies to. Celery's PersistentScheduler has no way to change a
# schedule while it runs (edit the setting, restart the beat): its "change" is a cold start.
APPLIES = {
    "change": ("ours", "redbeat", "sqlalchemy-celery-beat", "embedded"),
    "burst": SYSTEMS,
    "steady": SYSTEMS,
    "cold": SYSTEMS,
}
FULL = {
    "samples": 10, "loads": [0, 10_000, 100_000], "bursts": [1_000, 10_000, 50_000],
    # Beyond these a system's burst takes many minutes (see bench/README.md): not run.
    "burst_max": {"embedded": 10_000, "sqlalchemy-celery-beat": 10_000, "persistent": 10_000}, "steady": 3_300, "steady_period": 120.0, "cold": 100_000,
    "catch_up": 1_000, "catch_up_window": 20.0, "admin_sizes": [10_000, 100_000],
    "admin_duration": 10.0, "loop": 5.0, "lead": 4.0,
}
# Quick: a smoke run of every scenario and system in about two minutes; the polling beats run
# with a 1 s loop there (5 s in the full run), so their figures are not the full run's.
QUICK = {
    "samples": 1, "loads": [0], "bursts": [1_000], "burst_max": {}, "steady": 150,
    "steady_period": 3.0, "cold": 1_000, "catch_up": 50, "catch_up_window": 3.0,
    "admin_sizes": [500], "admin_duration": 1.0, "loop": 1.0, "lead": 2.0,
}
# A random pause before each change sample meets each beat at a random point of its loop:
# up to its loop interval for the polling beats, a little for the ones woken by a change.
GAPS = {"ours": 1.0, "embedded": 1.0, "redbeat": "loop", "sqlalchemy-celery-beat": "loop"}


def gap(name: str, sizes: dict) -> float:
    value = GAPS[name]
    return sizes["loop"] if value == "loop" else min(value, sizes["loop"])


_SEQUENCE = iter(range(1, 1_000_000))


def make_system(name: str, server: RedisServer, folder: Path, start: bool = True):
    """Start a system on its own folder and Redis database number (the server has 64)."""
    sequence = next(_SEQUENCE)
    db_number = sequence % 63 + 1
    folder = folder / f"{name}-{sequence}"
    if name == "ours":
        return Ours(server, folder, db_number, start=start)
    if name == "redbeat":
        return RedBeat(server, folder, db_number, start=start)
    if name == "sqlalchemy-celery-beat":
        from bench.scb_system import SqlaBeat

        return SqlaBeat(server, folder, db_number, start=start)
    if name == "persistent":
        return Persistent(server, folder, db_number, start=start)
    if name == "embedded":
        return Embedded(server, folder, db_number, start=start)
    raise ValueError(name)


def label(system) -> str:
    interval = getattr(system, "max_interval", None)
    if system.name in ("redbeat", "sqlalchemy-celery-beat", "celery PersistentScheduler") and interval:
        return f"{system.name} (loop ≤ {interval:g} s)"
    return system.name


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0 or ours < 0:
        return "-"
    value = ours / theirs
    return f"{value:.2g}x" if value < 10 else f"{value:,.0f}x"


class Context:
    """What every scenario needs: the Redis server, a folder, fresh database numbers."""

    def __init__(self, server: RedisServer, folder: Path, sizes: dict, systems: list[str],
                 side_by_side: bool = False):
        self.server, self.folder, self.sizes, self.systems = server, folder, sizes, systems
        self.side_by_side = side_by_side

    def system(self, name: str, start: bool = True):
        return make_system(name, self.server, self.folder, start=start)

    def each(self, scenario: str):
        return [s for s in self.systems if s in APPLIES[scenario]]

    def run(self, scenario: str, work) -> list:
        """Call work(name, rng) for each system of the scenario, in order; in quick mode side
        by side (threads: the systems are processes of their own) to keep the run short."""
        names = self.each(scenario)
        rngs = [random.Random(20240601 + i) for i in range(len(names))]
        if not self.side_by_side or len(names) < 2:
            return [work(name, rng) for name, rng in zip(names, rngs)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(names)) as pool:
            return list(pool.map(work, names, rngs))


# -- 1. change to effect -------------------------------------------------------------------


def scenario_change(ctx: Context) -> dict:
    samples = ctx.sizes["samples"]

    def work(name, rng):
        results, setup = [], []
        system = ctx.system(name)
        try:
            loaded = 0
            for load in ctx.sizes["loads"]:
                if load > loaded:
                    took = system.bulk_entries(load - loaded, f"load{load}")
                    setup.append([system.name, f"load {load - loaded:,} more schedules", ms(took)])
                    loaded = load
                    # The first change after a bulk load waits for the scheduler to take the load
                    # in: measured apart, then the samples see the settled state.
                    probe = Latency(system.name, "add", load)
                    listener = system.listener()
                    listener.timeout = 600.0
                    try:
                        system.add(f"probe{load}", 0, probe, listener)
                    finally:
                        listener.close()
                    setup.append([system.name, f"first change after loading {load:,}",
                                  ms(probe.samples[0]) if probe.samples else "no effect in 600 s"])
                log(f"{system.name}: change to effect, {load:,} other schedules, {samples} samples")
                results += bb.change_to_effect(system, f"l{load}", load, samples, rng, gap(name, ctx.sizes))
        finally:
            system.close()
        return system.name, label(system), results, setup

    results: list[Latency] = []
    labels, setup = {}, []
    for system_name, system_label, their_results, their_setup in ctx.run("change", work):
        labels[system_name] = system_label
        results += their_results
        setup += their_setup
    tables = []
    by = {(r.system, r.scenario, r.load): r for r in results}
    for scenario in bb.SCENARIOS:
        pause = scenario == "pause"
        what = {"add": "add a job due now", "update": "edit a job so that it is due now",
                "pause": "pause a job 0-100 ms before it is due",
                "resume": "resume a paused job (every 1 s)"}[scenario]
        figure = ("time until the pause is in effect (the call returns); messages published after it"
                  if pause else "its message in the broker (run recorded, embedded) after "
                  "max(change made, instant due)")
        header = ["system", "other schedules", "p50", "p99",
                  "published after pause" if pause else "ok", "ours p50 / this", "ours p99 / this"]
        rows = []
        for load in ctx.sizes["loads"]:
            ours = by.get(("ours", scenario, load))
            for r in (x for x in results if x.scenario == scenario and x.load == load):
                p50, p99 = percentile(r.samples, 50), percentile(r.samples, 99)
                total = len(r.samples) + r.failures
                third = f"{r.leaks}/{total}" if pause else f"{len(r.samples)}/{total}"
                if ours is not None and r.system != "ours":
                    r50 = ratio(percentile(ours.samples, 50), p50)
                    r99 = ratio(percentile(ours.samples, 99), p99)
                else:
                    r50 = r99 = ""
                rows.append([labels[r.system], f"{load:,}", ms(p50), ms(p99), third, r50, r99])
        tables.append((f"Change to effect: {what}; figure = {figure}", header, rows))
    if setup:
        tables.append(("Change to effect: loading the other schedules (setup, not compared)",
                       ["system", "step", "time"], setup))
    return {"tables": tables, "params": {"samples per scenario and size": samples,
                                         "other schedules": ctx.sizes["loads"],
                                         "random gap before a sample (s)": {n: gap(n, ctx.sizes) for n in GAPS}}}


# -- 2. burst ------------------------------------------------------------------------------


def scenario_burst(ctx: Context) -> dict:
    bursts, labels, skipped = [], {}, []
    for size in ctx.sizes["bursts"]:
        def work(name, _rng):
            limit = ctx.sizes["burst_max"].get(name)
            if limit is not None and size > limit:
                return f"{name}: the burst of {size:,} is not run (limit {limit:,}: see bench/README.md)"
            system = ctx.system(name)
            try:
                lead = ctx.sizes["lead"] + size * 0.0006 + (size * 0.0004 if name in ("redbeat", "sqlalchemy-celery-beat") else 0)
                log(f"{system.name}: burst of {size:,} due at T (setup + {lead:.0f}s)")
                result = system.burst(size, lead)
                log(f"  {system.name}: T->first {ms(result.first)}  T->last {ms(result.last)}  "
                    f"rate {result.rate or 0:,.0f}/s {result.note}")
                return system, result
            finally:
                system.close()

        for outcome in ctx.run("burst", work):
            if isinstance(outcome, str):
                skipped.append(outcome)
            else:
                labels[outcome[0].name] = label(outcome[0])
                bursts.append(outcome[1])
    rows = []
    for b in bursts:
        ours = next((o for o in bursts if o.system == "ours" and o.jobs == b.jobs), None)
        rate = f"{b.rate:,.0f}/s" if b.rate else "-"
        if ours is not None and b.system != "ours":
            r_last, r_rate = ratio(ours.last, b.last), ratio(ours.rate, b.rate)
        else:
            r_last = r_rate = ""
        rows.append([labels[b.system], f"{b.jobs:,}", f"{b.count:,}", ms(b.first), ms(b.half), ms(b.last),
                     rate, r_last, r_rate, b.note.strip()])
    header = ["system", "jobs due at T", "published", "T to first", "T to half", "T to last",
              "rate", "ours T-to-last / this", "ours rate / this", "note"]
    tables = [("Burst: jobs due in the same second T, no worker; time from T until published", header, rows)]
    return {"tables": tables, "params": {"sizes": ctx.sizes["bursts"]}, "notes": skipped}


# -- 3. steady -----------------------------------------------------------------------------


class ProcessSampler:
    """Sample a process's CPU time and resident memory once a second, from /proc."""

    def __init__(self, pid: int):
        self.pid = pid
        self.rss_max = 0
        self._stop = threading.Event()
        self._cpu0, self._t0 = self._cpu(), time.time()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.rss_max = max(self.rss_max, self._rss())
            except OSError:
                return

    def finish(self) -> tuple[float, int]:
        """Return (CPU share of one core over the window, max RSS in bytes)."""
        self._stop.set()
        self._thread.join(timeout=5)
        cpu = self._cpu() - self._cpu0
        self.rss_max = max(self.rss_max, self._rss())
        return cpu / max(time.time() - self._t0, 1e-9), self.rss_max


def scenario_steady(ctx: Context) -> dict:
    count, period = ctx.sizes["steady"], ctx.sizes["steady_period"]

    def work(name, _rng):
        system = ctx.system(name, start=False)
        try:
            lead = ctx.sizes["lead"] + count * 0.0008
            start = time.time() + lead
            spacing = period / count
            log(f"{system.name}: steady, {count:,} schedules over {period:g}s")
            system.schedule_many(count, "steady", lambda i: start + i * spacing, period)
            system.start_beat()
            listener = system.listener()
            try:
                bb.sleep_until(start)
                sampler = ProcessSampler(system.beat.pid)
                items = []
                end = start + period + ctx.sizes["loop"] + 2.0  # polling beats: up to a loop late
                while (item := listener.next(end)) is not None:
                    items.append(item)
                cpu, rss = sampler.finish()
            finally:
                listener.close()
            late = system.lateness(items)
            log(f"  {system.name}: published {len(late):,}/{count:,}  p50 {ms(percentile(late, 50))}  "
                f"p99 {ms(percentile(late, 99))}  max {ms(max(late) if late else None)}  CPU {cpu:.1%}  "
                f"RSS {rss / 2**20:.0f} MiB")
            return system, late, len(late), cpu, rss
        finally:
            system.close()

    measured = ctx.run("steady", work)
    ours = next((m for m in measured if m[0].name == "ours"), None)
    rows = []
    for system, late, firsts, cpu, rss in measured:
        p50, p99 = percentile(late, 50), percentile(late, 99)
        high = max(late) if late else None
        if ours is not None and system.name != "ours":
            ratios = [ratio(percentile(ours[1], 99), p99), ratio(ours[3], cpu), ratio(ours[4], rss)]
        else:
            ratios = ["", "", ""]
        rows.append([label(system), f"{firsts:,}/{count:,}", ms(p50), ms(p99), ms(high), f"{cpu:.1%}",
                     f"{rss / 2**20:.0f} MiB", *ratios])
    header = ["system", "schedules published", "lateness p50", "p99", "max", "beat CPU (one core)",
              "beat RSS (max)", "ours p99 / this", "ours CPU / this", "ours RSS / this"]
    title = (f"Steady: {count:,} schedules every {period:g} s, due evenly spread over the period "
             f"({count / period:.0f} per second); lateness = published - due instant")
    return {"tables": [(title, header, rows)], "params": {"schedules": count, "period s": period}}


# -- 4. cold start and catch-up ------------------------------------------------------------


def scenario_cold(ctx: Context) -> dict:
    size, jobs, window = ctx.sizes["cold"], ctx.sizes["catch_up"], ctx.sizes["catch_up_window"]
    cold_rows, catch_rows = [], []

    def work(name, _rng):
        system = ctx.system(name, start=False)
        try:
            took = system.bulk_entries(size, "cold")
            match, _ = system.marker()
            log(f"{system.name}: cold start with {size:,} schedules (loaded in {ms(took)})")
            listener = system.listener()
            try:
                t0 = time.time()
                system.start_beat()
                received = listener.wait(match, timeout=600)
            finally:
                listener.close()
            first = received - t0 if received else None
            log(f"  {system.name}: first publish {ms(first)} after the start")
        finally:
            system.close()
        system = ctx.system(name, start=False)
        try:
            policies = system.overdue(jobs, 60, 600)
            log(f"{system.name}: catch-up of {jobs:,} jobs (every 60 s) after 10 minutes down")
            listener = system.listener()
            try:
                system.start_beat()
                items = []
                end = time.time() + window
                while (item := listener.next(end)) is not None:
                    items.append(item)
            finally:
                listener.close()
            split = system.catch_up_split(items)
            log(f"  {system.name}: sends in {window:g}s: {split}")
        finally:
            system.close()
        return system, first, policies, split

    outcomes = ctx.run("cold", work)
    firsts = {system.name: first for system, first, _, _ in outcomes}
    for system, first, policies, split in outcomes:
        cold_rows.append([label(system), f"{size:,}", ms(first),
                          "" if system.name == "ours" else ratio(firsts.get("ours"), first)])
        per = jobs // len(policies)
        for policy in policies:
            what = {"celery": "(Celery's is_due: no policy)", "run_once": "misfire policy run_once",
                    "skip": "misfire policy skip"}[policy]
            catch_rows.append([label(system), what, f"{per:,}", f"{split.get(policy, 0):,}",
                               f"{split.get(policy, 0) / per:.2f}"])
    return {"tables": [
        (f"Cold start: the beat starts with {size:,} schedules loaded; time from its start to the first publish",
         ["system", "schedules", "start to first publish", "ours / this"], cold_rows),
        (f"Catch-up: the beat was down 10 minutes (the state is set as after 10 minutes down: jobs every "
         f"60 s, the last instant run 630 s ago, 10 instants missed, the next one 30 s after the "
         f"start); sends in the first {window:g} s after the start",
         ["system", "jobs", "how", "sends", "sends per job (10 instants missed)"],
         [[r[0], r[2], r[1], r[3], r[4]] for r in catch_rows]),
    ], "params": {"cold schedules": size, "catch-up jobs": jobs}}


# -- 5. the admin under load ---------------------------------------------------------------


def scenario_admin(ctx: Context) -> dict:
    from bench import admin_bench

    tables = admin_bench.run(ctx.sizes["admin_sizes"], ["embedded", "celery"], ctx.sizes["admin_duration"],
                             4, log=log)
    return {"tables": tables, "params": {"sizes": ctx.sizes["admin_sizes"]}}


RUNNERS = {"change": scenario_change, "burst": scenario_burst, "steady": scenario_steady,
           "cold": scenario_cold, "admin": scenario_admin}


# -- report --------------------------------------------------------------------------------


def write_report(results_dir: Path, output: Path, title: str) -> None:
    """Render every stored scenario into one markdown file, scenarios in their order."""
    stored = {}
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        stored[data["scenario"]] = data
    lines = [f"# {title}", "",
             "Written by `bench/suite.py` from `bench/results/*.json` (one file per scenario; every "
             "system of a scenario is measured in the same run). What each scenario does and how: "
             "`bench/README.md`. Ratios are ours / the other system: below 1 is better for a time, "
             "above 1 for a rate.", ""]
    first = next(iter(stored.values()), None)
    if first:
        lines += ["## Machine", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in first["machine"].items()), ""]
    for scenario in SCENARIOS:
        data = stored.get(scenario)
        if data is None:
            continue
        lines += [f"## {scenario}", "",
                  f"- date: {data['date']}; product commit {data['commit']}",
                  f"- command: `{data['command']}`",
                  *(f"- {k}: {v}" for k, v in data.get("params", {}).items()),
                  *(f"- note: {n}" for n in data.get("notes", [])), ""]
        for table in data["tables"]:
            lines += [render_markdown(*table), ""]
    output.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (make bench-quick)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override a size, e.g. --set bursts=[20] --set loads=[0]")
    parser.add_argument("--results", help="folder of the per-scenario JSON (bench/results; quick: bench/results-quick)")
    parser.add_argument("--output", help="markdown report (bench/RESULTS.md; quick: bench/RESULTS-quick.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in sizes:
            parser.error(f"unknown size {key}; one of {', '.join(sizes)}")
        sizes[key] = json.loads(value)
    # The polling beats' loop interval (read by their app modules, here and in their processes).
    for variable in ("REDBEAT_MAX_LOOP_INTERVAL", "PERSISTENT_MAX_LOOP_INTERVAL", "SCB_MAX_LOOP_INTERVAL"):
        os.environ[variable] = str(sizes["loop"])
    bb.PAUSE_WATCH = min(3.0, sizes["loop"] + 1.0)
    scenarios = [s for s in args.scenarios.split(",") if s]
    systems = [s for s in args.systems.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s}")
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s}")
    results_dir = Path(args.results or ROOT / "bench" / ("results-quick" if args.quick else "results"))
    output = Path(args.output or ROOT / "bench" / ("RESULTS-quick.md" if args.quick else "RESULTS.md"))
    results_dir.mkdir(parents=True, exist_ok=True)
    command = "PYTHONPATH=. .venv/bin/python bench/suite.py" + "".join(f" {a}" for a in sys.argv[1:])
    bb.COMMIT_AT_START = bb.product_commit()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    folder = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    (folder / "redis").mkdir()
    server = RedisServer(folder / "redis")
    ok = True
    try:
        server.start()
        log(f"redis-server pid {server.process.pid} on port {server.port}; files in {folder}")
        machine = bb.machine()
        for scenario in scenarios:
            ctx = Context(server, folder, sizes, systems, side_by_side=args.quick)
            started = datetime.now(timezone.utc)
            log(f"== {scenario}")
            try:
                data = RUNNERS[scenario](ctx)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:
                traceback.print_exc()
                ok = False
                continue
            finally:
                for process in list(bb.PROCESSES):
                    stop(process, signal.SIGTERM, timeout=30)
                bb.PROCESSES.clear()
                server.process and redis_flush(server)
            data.update(scenario=scenario, date=f"{started:%Y-%m-%d %H:%M} UTC", command=command,
                        commit=bb.product_commit(), machine=machine)
            if ctx.side_by_side and scenario != "admin":
                data.setdefault("notes", []).append(
                    "quick mode: the systems ran side by side on 2 cores, each slowed by the "
                    "others, with a 1 s loop for the polling beats: a smoke test, not figures")
            (results_dir / f"{scenario}.json").write_text(json.dumps(data, indent=1))
            for table in data["tables"]:
                print(render_text(*table), end="\n\n", flush=True)
        title = "Benchmarks: our beat and admin beside celery-redbeat, sqlalchemy-celery-beat, " \
                "Celery's PersistentScheduler and the embedded mode"
        write_report(results_dir, output, title + (" (quick sizes)" if args.quick else ""))
        log(f"wrote {output}")
    except (KeyboardInterrupt, SystemExit):
        log("interrupted")
        ok = False
    finally:
        for process in list(bb.PROCESSES):
            stop(process, signal.SIGTERM, timeout=30)
        bb.PROCESSES.clear()
        server.stop()
        log("redis-server and every scheduler stopped")
    if ok and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        log(f"logs and databases kept in {folder}")
    return 0 if ok else 1


def redis_flush(server: RedisServer) -> None:
    """Empty every database between scenarios (each system used its own number)."""
    import redis

    client = redis.Redis(port=server.port)
    client.flushall()
    client.close()


if __name__ == "__main__":
    sys.exit(main())
