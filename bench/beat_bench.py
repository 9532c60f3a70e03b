"""Benchmark our Celery beat (tasks.beat:RedisBeatScheduler) against celery-redbeat.

    PYTHONPATH=. .venv/bin/python bench/beat_bench.py [--quick]

Starts its own redis-server on a free loopback port and real `celery ... beat` processes (no
worker: messages stay in the queue lists of the broker), and measures for both beats:

1. change to effect: a change made through each system's own API (ours: the admin's scheduler
   service in a Flask app context with USE_CELERY=true; redbeat: RedBeatSchedulerEntry
   save()/delete()) until the beat acts on it (its task message is in the broker), for add,
   update, pause and resume; ours also with 10,000 other schedules loaded (redbeat as well);
2. burst: N jobs due at the same instant T; time from T until the last message is in the broker.

Prints a table per scenario and writes bench/RESULTS-beat.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import itertools
import json
import math
import os
import platform
import queue as queue_mod
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("LOG_LEVEL", "WARNING")  # the admin in this process: keep the output clean

import redis  # noqa: E402

from tests.processes import QUEUES, CeleryStack, RedisServer, stop  # noqa: E402
from tests.support import job_fields, wait_for  # noqa: E402

QUEUE_NAMES = QUEUES.split(",")
# kombu's Redis transport keeps a list per queue and priority step (0 is the bare name).
QUEUE_KEYS = [q if p == 0 else f"{q}\x06\x16{p}" for q in QUEUE_NAMES for p in (0, 3, 6, 9)]
WAIT = 60.0  # the longest any single wait may last
DUE_LEAD = 0.001  # ours: the admin refuses a start in the past, so "due now" is "due in 1 ms"
# After a sample that leaves a 1-s job behind (update, resume): let its follow-up tick pass, so
# that the random gap before the next sample meets the beat at a random phase of its own loop.
SETTLE = 1.2
OUR_BEAT_ENV = {"BEAT_LEASE_SECONDS": "5", "BEAT_HOUSEKEEPING_SECONDS": "5", "BEAT_BATCH": "1000"}
PROCESSES: list[subprocess.Popen] = []
VERBOSE = False
COMMIT_AT_START = "?"


# -- helpers -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def sleep_until(ts: float) -> None:
    delay = ts - time.time()
    if delay > 0:
        time.sleep(delay)


def spawn_beat(stack: CeleryStack, name: str, celery_args: list[str], profile: Path | None = None,
               **extra: str) -> subprocess.Popen:
    """Start a `celery ... beat` process in its own session; stopped later by its PID."""
    log_path = stack.folder / f"{name}.log"
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    with open(log_path, "ab") as fh:
        process = subprocess.Popen([*prefix, "-m", "celery", *celery_args], cwd=stack.folder,
                                   env=stack.env(**extra), stdout=fh, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    process.log_path = log_path
    PROCESSES.append(process)
    return process


def stop_beat(process: subprocess.Popen) -> None:
    stop(process, signal.SIGTERM, timeout=30)
    if process in PROCESSES:
        PROCESSES.remove(process)


def queued_count(client: redis.Redis) -> int:
    pipe = client.pipeline(transaction=False)
    for key in QUEUE_KEYS:
        pipe.llen(key)
    return sum(pipe.execute())


class Listener:
    """BLPOP the queue lists in a thread and note when each task message arrives."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.messages: queue_mod.Queue = queue_mod.Queue()
        self.unmatched = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.client.blpop(QUEUE_KEYS, timeout=0.2)
            except redis.RedisError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if item:
                received = time.time()
                headers = json.loads(item[1]).get("headers") or {}
                self.messages.put((received, headers))

    def next(self, deadline: float):
        remaining = deadline - time.time()
        if remaining <= 0:
            return None
        try:
            return self.messages.get(timeout=remaining)
        except queue_mod.Empty:
            return None

    def wait(self, match, timeout: float = WAIT) -> float | None:
        """Return when the first message that matches arrived, or None after the timeout."""
        deadline = time.time() + timeout
        while (item := self.next(deadline)) is not None:
            if match(item[1]):
                return item[0]
            self.unmatched += 1
        return None

    def collect(self, match, until: float) -> list[float]:
        """Return when each matching message arrived, until the given time."""
        times = []
        while (item := self.next(until)) is not None:
            if match(item[1]):
                times.append(item[0])
            else:
                self.unmatched += 1
        return times

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()


@dataclass
class Latency:
    """Samples of one change scenario for one system."""

    system: str
    scenario: str
    load: int
    samples: list[float] = field(default_factory=list)  # seconds
    failures: int = 0
    calls: list[float] = field(default_factory=list)  # how long the API call itself took
    leaks: int = 0  # pause: messages published after the pause call returned
    during: int = 0  # pause: messages published while the pause call was running
    note: str = ""


@dataclass
class Burst:
    system: str
    jobs: int
    lead: float = 0.0  # seconds between the end of the setup and T
    first: float | None = None  # seconds after T
    half: float | None = None
    last: float | None = None
    count: int = 0
    note: str = ""

    @property
    def rate(self) -> float | None:
        """Jobs per second from T until the last message is in the broker."""
        if self.last is None or self.last <= 0:
            return None
        return self.jobs / self.last


# -- our beat ------------------------------------------------------------------------------


class Ours:
    """The admin (Flask app in this process, USE_CELERY=true) and one RedisBeatScheduler beat."""

    name = "ours"

    def __init__(self, server: RedisServer, folder: Path, db_number: int, profile: Path | None = None):
        from webapp import create_app

        self.stack = CeleryStack(folder, server, db_number)
        self.stack.instance.mkdir(parents=True)
        self.stack.flask("db", "upgrade")
        os.environ["INSTANCE_PATH"] = str(self.stack.instance)
        self.app = create_app({**self.stack.config(), "TESTING": False})
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.broker = redis.Redis.from_url(self.stack.broker_url)
        self.beat = spawn_beat(self.stack, f"ours-beat-db{db_number}",
                               ["-A", "tasks", "beat", "--scheduler", "tasks.beat:RedisBeatScheduler",
                                "--loglevel", "INFO"], profile=profile, **OUR_BEAT_ENV)
        store = self.backend.store
        wait_for(lambda: any(b.get("role") == "leader" for b in store.beats().values()),
                 timeout=WAIT, message="our beat to lead")

    @property
    def backend(self):
        return self.app.extensions["scheduler"]

    def close(self) -> None:
        from webapp.extensions import db

        stop_beat(self.beat)
        self.backend.shutdown()
        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()
        self.broker.close()

    # -- helpers

    def fields(self, name: str, **overrides) -> dict:
        return job_fields(name=name, every="1", every_unit="days", **overrides)

    def job_of(self, headers: dict) -> int | None:
        from sqlalchemy import select

        from webapp.extensions import db
        from webapp.models import JobRun

        task_id = headers.get("id") or ""
        if not task_id.startswith("run-"):
            return None
        db.session.rollback()  # end the read snapshot, to see the beat's commits
        return db.session.scalar(select(JobRun.job_id).where(JobRun.id == int(task_id[4:])))

    def matcher(self, job_id: int):
        return lambda headers: self.job_of(headers) == job_id

    def bulk_jobs(self, count: int, prefix: str, next_run: float | None, every: int = 86400,
                  max_concurrent: int = 1) -> float:
        """Insert jobs in one statement, bump the schedule revision, project them; return sync time."""
        from sqlalchemy import insert, update

        from webapp.extensions import db
        from webapp.models import Job, ScheduleRevision

        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rows = []
        for i in range(count):
            nxt = (datetime.fromtimestamp(next_run, timezone.utc).replace(tzinfo=None) if next_run
                   else now + timedelta(seconds=every, milliseconds=i))
            name = f"{prefix}-{i:05d}"
            rows.append({
                "name": name, "name_key": name.casefold(), "task": "system.sleep", "queue": "system",
                "params": {"seconds": 0}, "schedule_kind": "interval", "every_seconds": every,
                "timezone": "UTC", "anchor_at": nxt - timedelta(seconds=every), "misfire_policy": "run_once",
                "max_concurrent": max_concurrent, "paused": False, "next_run_at": nxt, "revision": 1,
                "description": "", "created_by": "bench",
            })
        for start in range(0, len(rows), 2000):
            db.session.execute(insert(Job), rows[start:start + 2000])
        if not db.session.execute(update(ScheduleRevision).where(ScheduleRevision.id == 1)
                                  .values(value=ScheduleRevision.value + 1)).rowcount:
            db.session.add(ScheduleRevision(id=1, value=1))
        db.session.commit()
        started = time.perf_counter()
        self.backend.sync()
        return time.perf_counter() - started

    # -- change to effect

    def add(self, label: str, i: int, result: Latency, listener: Listener) -> None:
        from webapp.services import jobs as service

        t0 = time.time()
        due = t0 + DUE_LEAD
        job = service.add(self.fields(f"{label}-add-{i}", start_at=iso(due)), "bench")
        result.calls.append(time.time() - t0)
        self._await(job, due, t0, result, listener)

    def update(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        from webapp.services import jobs as service

        name = f"{label}-update-{i}"
        job = service.add(self.fields(name), "bench")  # due in a day
        gap()
        t0 = time.time()
        due = t0 + DUE_LEAD
        job = service.update_job(job.id, self.fields(name, start_at=iso(due)), "bench")
        result.calls.append(time.time() - t0)
        self._await(job, due, t0, result, listener)

    def _await(self, job, due: float, t0: float, result: Latency, listener: Listener) -> None:
        if job.next_run is None or abs(job.next_run.timestamp() - due) > 1e-3:
            result.failures += 1
            result.note = "next run not at the requested instant"
            return
        received = listener.wait(self.matcher(job.id))
        if received is None:
            result.failures += 1
        else:
            result.samples.append(received - max(t0, due))

    def pause(self, label: str, i: int, result: Latency, listener: Listener, rng: random.Random) -> None:
        from webapp.services import jobs as service

        due = time.time() + 1.0
        job = service.add(self.fields(f"{label}-pause-{i}", start_at=iso(due)), "bench")
        sleep_until(due - rng.uniform(0.0, 0.1))
        t0 = time.time()
        service.pause(job.id, "bench")
        returned = time.time()
        times = listener.collect(self.matcher(job.id), until=due + 3.0)
        result.calls.append(returned - t0)
        result.samples.append(returned - t0)
        result.leaks += sum(t > returned for t in times)
        result.during += sum(t0 < t <= returned for t in times)

    def resume(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        from webapp.services import jobs as service

        job = service.add(job_fields(name=f"{label}-resume-{i}", every="1", every_unit="seconds",
                                     enabled=None), "bench")  # created paused
        gap()
        t0 = time.time()
        job = service.resume(job.id, "bench")
        result.calls.append(time.time() - t0)
        due = job.next_run.timestamp()
        received = listener.wait(self.matcher(job.id))
        service.remove(job.id, "bench")  # it would go on every second
        time.sleep(SETTLE)
        if received is None:
            result.failures += 1
        else:
            result.samples.append(received - max(t0, due))

    # -- burst

    def burst(self, jobs: int, lead: float) -> Burst:
        started = time.time()
        due = math.ceil(started + lead)
        self.bulk_jobs(jobs, "burst", next_run=due)
        return measure_burst(self.name, self.broker, jobs, due)


# -- celery-redbeat ------------------------------------------------------------------------


class RedBeat:
    """A redbeat.RedBeatScheduler beat on the same Celery app, and its entry API in this process."""

    name = "redbeat"

    def __init__(self, server: RedisServer, folder: Path, db_number: int):
        from bench.redbeat_app import make_app

        self.stack = CeleryStack(folder, server, db_number)
        self.stack.instance.mkdir(parents=True)
        self.app = make_app(self.stack.broker_url)
        self.broker = redis.Redis.from_url(self.stack.broker_url)
        self.tags = itertools.count(1)
        self.beat = spawn_beat(self.stack, f"redbeat-beat-db{db_number}",
                               ["-A", "bench.redbeat_app", "beat", "-S", "redbeat.RedBeatScheduler",
                                "--max-interval", str(int(self.max_interval)), "--loglevel", "INFO"],
                               REDBEAT_MAX_LOOP_INTERVAL=str(self.max_interval))
        lock = self.app.redbeat_conf.lock_key
        wait_for(lambda: self.broker.exists(lock), timeout=WAIT, message="redbeat to take its lock")

    @property
    def max_interval(self) -> float:
        from bench.redbeat_app import MAX_LOOP_INTERVAL

        return MAX_LOOP_INTERVAL

    def close(self) -> None:
        stop_beat(self.beat)
        self.app.close()
        self.broker.close()

    # -- helpers

    def entry(self, name: str, every: timedelta, tag: int, last_run_at: datetime | None = None):
        from celery.schedules import schedule
        from redbeat import RedBeatSchedulerEntry

        return RedBeatSchedulerEntry(name, "system.sleep", schedule(run_every=every, app=self.app),
                                     args=[tag], app=self.app, last_run_at=last_run_at)

    @staticmethod
    def tag_of(headers: dict) -> int | None:
        try:
            args = ast.literal_eval(headers.get("argsrepr") or "")
            return int(args[0])
        except (ValueError, SyntaxError, TypeError, IndexError):
            return None

    def matcher(self, tag: int):
        return lambda headers: self.tag_of(headers) == tag

    def bulk_entries(self, count: int, prefix: str) -> float:
        started = time.perf_counter()
        for i in range(count):
            self.entry(f"{prefix}-{i:05d}", timedelta(days=1), next(self.tags)).save()
        return time.perf_counter() - started

    # -- change to effect

    def add(self, label: str, i: int, result: Latency, listener: Listener) -> None:
        tag = next(self.tags)
        t0 = time.time()
        entry = self.entry(f"{label}-add-{i}", timedelta(days=1), tag)
        entry.last_run_at = None  # never run: due now
        entry.save()
        result.calls.append(time.time() - t0)
        self._await(tag, t0, t0, result, listener)

    def update(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        tag = next(self.tags)
        entry = self.entry(f"{label}-update-{i}", timedelta(days=1), tag).save()  # due in a day
        created = entry.last_run_at.timestamp()
        gap()
        t0 = time.time()
        entry.schedule = self.entry(entry.name, timedelta(seconds=1), tag).schedule  # due now
        entry.save()
        result.calls.append(time.time() - t0)
        self._await(tag, t0, max(t0, created + 1.0), result, listener)
        entry.delete()  # it would go on every second
        time.sleep(SETTLE)

    def _await(self, tag: int, t0: float, due: float, result: Latency, listener: Listener) -> None:
        received = listener.wait(self.matcher(tag))
        if received is None:
            result.failures += 1
        else:
            result.samples.append(received - max(t0, due))

    def pause(self, label: str, i: int, result: Latency, listener: Listener, rng: random.Random) -> None:
        tag = next(self.tags)
        now = datetime.now(timezone.utc)
        due = now.timestamp() + 1.0
        # last_run_at now and an interval of 1 s: due in 1 s (and its score in Redis says so).
        entry = self.entry(f"{label}-pause-{i}", timedelta(seconds=1), tag, last_run_at=now).save()
        sleep_until(due - rng.uniform(0.0, 0.1))
        t0 = time.time()
        entry.delete()
        returned = time.time()
        times = listener.collect(self.matcher(tag), until=due + 3.0)
        result.calls.append(returned - t0)
        result.samples.append(returned - t0)
        result.leaks += sum(t > returned for t in times)
        result.during += sum(t0 < t <= returned for t in times)

    def resume(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        tag = next(self.tags)
        entry = self.entry(f"{label}-resume-{i}", timedelta(seconds=1), tag).save()
        entry.delete()  # paused
        created = entry.last_run_at.timestamp()
        gap()
        t0 = time.time()
        entry.save()  # resumed
        result.calls.append(time.time() - t0)
        self._await(tag, t0, max(t0, created + 1.0), result, listener)
        entry.delete()  # it would go on every second
        time.sleep(SETTLE)

    # -- burst

    def burst(self, jobs: int, lead: float) -> Burst:
        started = time.time()
        due = math.ceil(started + lead)
        for i in range(jobs):
            # Due at T: last run now, interval T - now. (A last_run_at of T - 1 day with a 1-day
            # interval is also due at T, but redbeat then scores it in the past: see README.)
            now = datetime.now(timezone.utc)
            self.entry(f"burst-{i:05d}", timedelta(seconds=due - now.timestamp()), i,
                       last_run_at=now).save()
        return measure_burst(self.name, self.broker, jobs, due)


# -- burst measurement ---------------------------------------------------------------------


def measure_burst(system: str, broker: redis.Redis, jobs: int, due: float) -> Burst:
    """Poll the queue lengths until all `jobs` messages are there (no worker consumes them)."""
    result = Burst(system, jobs, lead=due - time.time())
    if result.lead < 0.5:
        result.note = f"setup overran T by {-result.lead:.1f}s"
    if queued_count(broker):
        result.note += " messages before T"
    progress_at, count = time.time(), 0
    cap = due + 900
    while True:
        now = time.time()
        count = queued_count(broker)
        if count and result.first is None:
            result.first = now - due
        if count * 2 >= jobs and result.half is None:
            result.half = now - due
        if count >= jobs:
            result.last = now - due
            break
        if count != result.count:
            progress_at = now
        result.count = count
        if now > cap or now - max(progress_at, due) > WAIT:
            result.note += f" timed out with {count}/{jobs} in the broker"
            break
        time.sleep(0.005)
    result.count = count
    return result


# -- scenarios -----------------------------------------------------------------------------


SCENARIOS = ("add", "update", "pause", "resume")


def change_to_effect(system, label: str, load: int, samples: int, rng: random.Random,
                     gap_max: float) -> list[Latency]:
    """Run every change scenario `samples` times on one system with `load` other schedules."""
    listener = Listener(system.stack.broker_url)

    def gap():
        time.sleep(rng.uniform(0.0, gap_max))  # decorrelate from the beat's own rhythm

    results = []
    try:
        for scenario in SCENARIOS:
            result = Latency(system.name, scenario, load)
            for i in range(samples):
                if scenario == "add":
                    gap()
                    system.add(label, i, result, listener)
                elif scenario == "pause":
                    gap()
                    system.pause(label, i, result, listener, rng)
                else:
                    getattr(system, scenario)(label, i, result, listener, gap)
            log(f"  {system.name:8} {scenario:7} load={load:<6} {summary(result)}")
            if VERBOSE:
                log("    samples: " + " ".join(ms(v) for v in sorted(result.samples)))
            results.append(result)
    finally:
        listener.close()
    return results


def summary(result: Latency) -> str:
    p50, p99 = percentile(result.samples, 50), percentile(result.samples, 99)
    text = f"p50 {ms(p50)}  p99 {ms(p99)}  ok {len(result.samples)}/{len(result.samples) + result.failures}"
    if result.scenario == "pause":
        text += f"  published after pause {result.leaks}"
    return text


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0:
        return "-"
    return f"{ours / theirs:.2g}x"


# -- report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def meminfo() -> str:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        except OSError:
            pass
        return "?"

    def cpu() -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "?"

    redis_server = subprocess.run([shutil.which("redis-server") or "redis-server", "--version"],
                                  capture_output=True, text=True).stdout.split()
    version = next((w.split("=", 1)[1] for w in redis_server if w.startswith("v=")), "?")

    def pkg(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "?"

    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU": cpu(),
        "memory": meminfo(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "celery": pkg("celery"),
        "kombu": pkg("kombu"),
        "celery-redbeat": pkg("celery-redbeat"),
        "redis-py": pkg("redis"),
        "redis-server": version,
        "SQLite": sqlite3.sqlite_version,
        "product commit": COMMIT_AT_START if product_commit() == COMMIT_AT_START
        else f"{COMMIT_AT_START} at the start, {product_commit()} at the end (changed during the run)",
    }


def product_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "tasks", "webapp", "migrations")
    return head + (" (tasks/webapp with uncommitted changes)" if dirty else "")


def tables(latencies: list[Latency], bursts: list[Burst], setup: dict, max_interval: float) -> list[tuple[str, list[str], list[list[str]]]]:
    """Return (title, header, rows) for each scenario."""
    out = []
    by = {(r.system, r.scenario, r.load): r for r in latencies}
    loads = sorted({r.load for r in latencies})
    for scenario in SCENARIOS:
        if scenario == "pause":
            title = ("Change to effect: pause a job just before it is due (0-100 ms before); "
                     "figure = time until the pause is in effect (the call returns)")
            header = ["system", "other schedules", "p50", "p99", "published after the pause",
                      "published during the call", "ours/redbeat p50", "ours/redbeat p99"]
        else:
            what = {"add": "add a job due now", "update": "edit a job so that it is due now",
                    "resume": "resume a paused job (every 1 s)"}[scenario]
            title = (f"Change to effect: {what}; figure = its message in the broker after "
                     "max(change made, instant due)")
            header = ["system", "other schedules", "p50", "p99", "samples ok", "API call p50",
                      "ours/redbeat p50", "ours/redbeat p99"]
        rows = []
        for load in loads:
            theirs = by.get(("redbeat", scenario, load))
            for system in ("ours", "redbeat"):
                r = by.get((system, scenario, load))
                if r is None:
                    continue
                p50, p99 = percentile(r.samples, 50), percentile(r.samples, 99)
                label = system if system == "ours" else f"redbeat (max loop interval {max_interval:g} s)"
                if system == "ours" and theirs is not None:
                    r50 = ratio(p50, percentile(theirs.samples, 50))
                    r99 = ratio(p99, percentile(theirs.samples, 99))
                else:
                    r50 = r99 = ""
                total = len(r.samples) + r.failures
                if scenario == "pause":
                    rows.append([label, f"{load:,}", ms(p50), ms(p99), f"{r.leaks}/{total}",
                                 f"{r.during}/{total}", r50, r99])
                else:
                    rows.append([label, f"{load:,}", ms(p50), ms(p99), f"{len(r.samples)}/{total}",
                                 ms(percentile(r.calls, 50)), r50, r99])
        out.append((title, header, rows))
    if bursts:
        jobs = bursts[0].jobs
        title = (f"Burst: {jobs:,} jobs due at the same second T, no worker; time from T until "
                 "the messages are in the broker")
        header = ["system", "jobs", "T to first", "T to half", "T to last", "rate (jobs / T to last)",
                  "ours/redbeat (T to last)", "ours/redbeat (rate)", "note"]
        theirs = next((b for b in bursts if b.system == "redbeat"), None)
        rows = []
        for b in bursts:
            label = b.system if b.system == "ours" else f"redbeat (max loop interval {max_interval:g} s)"
            rate = f"{b.rate:,.0f} msg/s" if b.rate else "-"
            if b.system == "ours" and theirs is not None:
                r_last = ratio(b.last, theirs.last)
                r_rate = ratio(b.rate, theirs.rate)
            else:
                r_last = r_rate = ""
            rows.append([label, f"{b.count:,}/{b.jobs:,}", ms(b.first), ms(b.half), ms(b.last), rate,
                         r_last, r_rate, b.note.strip()])
        out.append((title, header, rows))
    if setup:
        out.append(("Setup (not compared)", ["step", "time"], [[k, v] for k, v in setup.items()]))
    return out


def render_text(title, header, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render_markdown(title, header, rows) -> str:
    return "\n".join([f"### {title}", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 samples, a burst of 1,000")
    parser.add_argument("--samples", type=int, help="samples per change scenario (20; 5 with --quick)")
    parser.add_argument("--burst", type=int, help="jobs in the burst (10,000; 1,000 with --quick)")
    parser.add_argument("--load", type=int, default=10_000, help="other schedules loaded (10,000)")
    parser.add_argument("--gap", type=float, default=5.0,
                        help="random pause before each sample, 0..GAP s (5: redbeat's loop, our housekeeping)")
    parser.add_argument("--only", choices=("ours", "redbeat"), help="run one system only")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="run our burst beat under cProfile and print where its time goes")
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS-beat.md"))
    args = parser.parse_args()
    global VERBOSE, COMMIT_AT_START
    VERBOSE = args.verbose
    COMMIT_AT_START = product_commit()
    samples = args.samples or (5 if args.quick else 20)
    burst_jobs = args.burst or (1_000 if args.quick else 10_000)
    systems = [args.only] if args.only else ["ours", "redbeat"]
    rng = random.Random(20240601)
    command = "PYTHONPATH=. .venv/bin/python bench/beat_bench.py" + "".join(f" {a}" for a in sys.argv[1:])

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    folder = Path(tempfile.mkdtemp(prefix="beat-bench-"))
    server = RedisServer(folder / "redis")
    (folder / "redis").mkdir()
    latencies: list[Latency] = []
    bursts: list[Burst] = []
    setup: dict[str, str] = {}
    started = datetime.now(timezone.utc)
    ok = False
    # Read like bench/redbeat_app.py does, without importing redbeat (absent in `make test`).
    MAX_LOOP_INTERVAL = float(os.environ.get("REDBEAT_MAX_LOOP_INTERVAL", "5"))

    try:
        server.start()
        log(f"redis-server pid {server.process.pid} on port {server.port}; files in {folder}")
        numbers = itertools.count(1)
        if not args.skip_latency:
            for name in systems:
                cls = Ours if name == "ours" else RedBeat
                system = cls(server, folder / f"{name}-latency", next(numbers))
                try:
                    log(f"{name}: change to effect, {samples} samples per scenario")
                    latencies += change_to_effect(system, f"{name}-empty", 0, samples, rng, args.gap)
                    if args.load:
                        if name == "ours":
                            took = system.bulk_jobs(args.load, "load", next_run=None)
                            setup[f"ours: project {args.load:,} jobs into Redis (backend sync())"] = ms(took)
                        else:
                            took = system.bulk_entries(args.load, "load")
                            setup[f"redbeat: save {args.load:,} entries"] = ms(took)
                        log(f"{name}: loaded {args.load:,} other schedules in {ms(took)}")
                        time.sleep(args.gap)  # let the beat see them
                        latencies += change_to_effect(system, f"{name}-loaded", args.load, samples, rng, args.gap)
                finally:
                    system.close()
        if not args.skip_burst:
            lead = 5.0 + burst_jobs * 0.0008
            for name in systems:
                profile = folder / "ours-burst.prof" if (args.profile and name == "ours") else None
                if name == "ours":
                    system = Ours(server, folder / "ours-burst", next(numbers), profile=profile)
                else:
                    system = RedBeat(server, folder / "redbeat-burst", next(numbers))
                try:
                    log(f"{name}: burst of {burst_jobs:,} jobs due at T (setup + {lead:.0f}s)")
                    result = system.burst(burst_jobs, lead)
                    if profile is not None:
                        result.note += " (beat under cProfile: slower)"
                    log(f"  {name:8} burst: T->first {ms(result.first)}  T->last {ms(result.last)}  "
                        f"rate {result.rate or 0:,.0f}/s  {result.note}")
                    bursts.append(result)
                    if name == "ours":
                        setup_check(system, burst_jobs, setup)
                finally:
                    system.close()
                if profile is not None and profile.exists():
                    print_profile(profile)
        ok = True
    except (KeyboardInterrupt, SystemExit):
        log("interrupted")
    except Exception:
        traceback.print_exc()
    finally:
        for process in list(PROCESSES):
            stop(process, signal.SIGTERM, timeout=30)
        PROCESSES.clear()
        server.stop()
        log("redis-server and beats stopped")

    if latencies or bursts:
        report = tables(latencies, bursts, setup, MAX_LOOP_INTERVAL)
        print()
        for table in report:
            print(render_text(*table))
            print()
        if ok:
            write_markdown(Path(args.output), report, command, started, samples, burst_jobs, args)
            log(f"wrote {args.output}")
    if ok and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        log(f"logs and databases kept in {folder}")
    return 0 if ok else 1


def setup_check(system: Ours, jobs: int, setup: dict) -> None:
    """Check that our beat recorded exactly one queued run per job of the burst."""
    from sqlalchemy import func, select

    from webapp.extensions import db
    from webapp.models import JobRun

    db.session.rollback()
    counts = dict(db.session.execute(select(JobRun.status, func.count()).group_by(JobRun.status)).all())
    setup["ours: runs recorded by the burst"] = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def print_profile(path: Path) -> None:
    import pstats

    log(f"cProfile of our beat during the burst ({path}):")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


def write_markdown(path: Path, report, command: str, started: datetime, samples: int,
                   burst_jobs: int, args) -> None:
    info = machine()
    lines = [
        "# Beat benchmark: our RedisBeatScheduler vs celery-redbeat",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}`",
        f"- samples per change scenario: {samples}; burst: {burst_jobs:,} jobs; "
        f"other schedules loaded: {args.load:,}; random gap before each sample: 0-{args.gap:g} s",
        "- ours: `celery -A tasks beat --scheduler tasks.beat:RedisBeatScheduler` with "
        + ", ".join(f"{k}={v}" for k, v in OUR_BEAT_ENV.items()) + " (the defaults), SQLite database",
        "- redbeat: `celery -A bench.redbeat_app beat -S redbeat.RedBeatScheduler --max-interval 5` "
        "(beat_max_loop_interval=5; Celery's default is 300 s), same Celery app and queues",
        "- both: one beat, no worker, one private redis-server on loopback (own database number per run)",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "## Results",
        "",
    ]
    for table in report:
        lines += [render_markdown(*table), ""]
    lines += ["Figures: p50/p99 are nearest-rank percentiles over the samples. See bench/README.md "
              "for what each scenario does.", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
