"""The systems the benchmark suite (bench/suite.py) measures, and how it observes them.

Each system runs its scheduler as a real process and exposes the same methods: its own way of
changing a schedule (add, update, pause, resume), bulk loading, a burst, steady and overdue
schedules, and a listener that sees what the scheduler publishes:

- Ours: the admin's scheduler service (Flask app in this process, USE_CELERY=true) and a
  `celery -A tasks beat --scheduler tasks.beat:RedisBeatScheduler` process;
- RedBeat: celery-redbeat's entries API and its beat (bench/redbeat_app.py);
- Persistent: Celery's default beat; its schedule is a setting read at start (bench/persistent_app.py);
- Embedded: the admin's service, and the embedded APScheduler in another process (bench/embedded_host.py);
- SqlaBeat (bench/scb_system.py): sqlalchemy-celery-beat's models and its DatabaseScheduler.

No worker runs: messages stay in the broker's queue lists, where a Listener (BLPOP in a thread)
notes when each arrives; for the embedded mode a DbListener polls the runs table.
"""

from __future__ import annotations

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
import threading
import time
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
PAUSE_WATCH = 3.0  # after a pause, watch for messages of the paused job until due + this
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


_TEMPLATE_DB: Path | None = None
_TEMPLATE_LOCK = threading.Lock()


def fresh_database(stack: CeleryStack) -> None:
    """Give the stack an empty, migrated admin database: `flask db upgrade` once per run, then
    a copy of that one (the migrations take a second of every system's setup otherwise)."""
    global _TEMPLATE_DB
    target = stack.instance / "scheduler.db"
    with _TEMPLATE_LOCK:
        if _TEMPLATE_DB is None or not _TEMPLATE_DB.exists():
            stack.flask("db", "upgrade", USE_CELERY="false")
            template = stack.folder.parent / "template-scheduler.db"
            _copy_database(target, template)
            _TEMPLATE_DB = template
            return
    _copy_database(_TEMPLATE_DB, target)


def _copy_database(source: Path, destination: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(destination) as dst:
        src.backup(dst)
    src.close()
    dst.close()


class Listener:
    """BLPOP the queue lists in a thread and note when each task message arrives."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.timeout = WAIT  # how long wait() waits for a message by default
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

    def wait(self, match, timeout: float | None = None) -> float | None:
        """Return when the first message that matches arrived, or None after the timeout."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
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


def watch_pause(result: Latency, listener, match, t0: float, returned: float, due: float) -> None:
    """After a pause call (t0..returned) of a job due at `due`: note the call's time, and the
    job's messages published during it and after it (until due + PAUSE_WATCH)."""
    times = listener.collect(match, until=due + PAUSE_WATCH)
    result.calls.append(returned - t0)
    result.samples.append(returned - t0)
    result.leaks += sum(t > returned for t in times)
    result.during += sum(t0 < t <= returned for t in times)


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

    def __init__(self, server: RedisServer, folder: Path, db_number: int, profile: Path | None = None,
                 start: bool = True):
        from webapp import create_app

        self.stack = CeleryStack(folder, server, db_number)
        self.stack.instance.mkdir(parents=True)
        fresh_database(self.stack)
        os.environ["INSTANCE_PATH"] = str(self.stack.instance)
        self.app = create_app({**self.stack.config(), "TESTING": False})
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.broker = redis.Redis.from_url(self.stack.broker_url)
        self.profile = profile
        self.beat = None
        if start:
            self.start_beat()

    def start_beat(self) -> None:
        self.beat = spawn_beat(self.stack, f"ours-beat-db{self.stack.db_number}",
                               ["-A", "tasks", "beat", "--scheduler", "tasks.beat:RedisBeatScheduler",
                                "--loglevel", "INFO"], profile=self.profile, **OUR_BEAT_ENV)
        store = self.backend.store
        wait_for(lambda: any(b.get("role") == "leader" for b in store.beats().values()),
                 timeout=WAIT, message="our beat to lead")

    def stop_beat(self) -> None:
        if self.beat is not None:
            stop_beat(self.beat)
            self.beat = None

    def listener(self) -> "Listener":
        return Listener(self.stack.broker_url)

    @property
    def backend(self):
        return self.app.extensions["scheduler"]

    def close(self) -> None:
        from webapp.extensions import db

        self.stop_beat()
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
        """Insert jobs due at next_run (None: in a day), project them; return the sync time."""
        now = time.time()
        return self.schedule_many(count, prefix, (lambda i: next_run) if next_run
                                  else (lambda i: now + every + i / 1000), every,
                                  max_concurrent=max_concurrent)

    def bulk_entries(self, count: int, prefix: str) -> float:
        return self.bulk_jobs(count, prefix, next_run=None)

    def schedule_many(self, count: int, prefix: str, first_due, every: float, tag_base: int = 0,
                      max_concurrent: int = 1, misfire_policy: str = "run_once", sync: bool = True) -> float:
        """Insert `count` interval jobs, job i next due at first_due(i), in one statement per
        2,000; bump the schedule revision; project them into Redis (the admin's sync()).
        Returns the time the projection took."""
        from sqlalchemy import insert, update

        from webapp.extensions import db
        from webapp.models import Job, ScheduleRevision

        rows = []
        for i in range(count):
            nxt = datetime.fromtimestamp(first_due(i), timezone.utc).replace(tzinfo=None)
            name = f"{prefix}-{tag_base + i:06d}"
            rows.append({
                "name": name, "name_key": name.casefold(), "task": "system.sleep", "queue": "system",
                "params": {"seconds": 0}, "schedule_kind": "interval", "every_seconds": int(every),
                "timezone": "UTC", "anchor_at": nxt - timedelta(seconds=every),
                "misfire_policy": misfire_policy, "max_concurrent": max_concurrent, "paused": False,
                "next_run_at": nxt, "revision": 1, "description": "", "created_by": "bench",
            })
        for start in range(0, len(rows), 2000):
            db.session.execute(insert(Job), rows[start:start + 2000])
        if not db.session.execute(update(ScheduleRevision).where(ScheduleRevision.id == 1)
                                  .values(value=ScheduleRevision.value + 1)).rowcount:
            db.session.add(ScheduleRevision(id=1, value=1))
        db.session.commit()
        if not sync:
            return 0.0
        started = time.perf_counter()
        self.backend.sync()
        return time.perf_counter() - started

    def lateness(self, items: list[tuple[float, dict]]) -> list[float]:
        """Return, for messages (received, headers), received - the instant the run was due;
        the first run of each job only (a period's window also sees a few second runs)."""
        due = self._run_field(items, "scheduled_for")
        first: dict[int, float] = {}
        for received, rid in self._run_ids(items):
            if rid in due:
                job_id, at = due[rid]
                if job_id not in first or at < first[job_id][0]:
                    first[job_id] = (at, received - at)
        return [late for _, late in first.values()]

    def _run_ids(self, items):
        for received, headers in items:
            task_id = headers.get("id") or ""
            if task_id.startswith("run-"):
                yield received, int(task_id[4:])

    def _run_field(self, items, column: str) -> dict:
        from sqlalchemy import select

        from webapp.extensions import db
        from webapp.models import Job, JobRun

        db.session.rollback()
        ids = [rid for _, rid in self._run_ids(items)]
        out = {}
        for start in range(0, len(ids), 500):
            if column == "scheduled_for":
                query = (select(JobRun.id, JobRun.job_id, JobRun.scheduled_for)
                         .where(JobRun.id.in_(ids[start:start + 500])))
                out.update({rid: (job_id, at.replace(tzinfo=timezone.utc).timestamp())
                            for rid, job_id, at in db.session.execute(query)})
            else:  # the misfire policy of the run's job
                query = (select(JobRun.id, Job.misfire_policy).join(Job, Job.id == JobRun.job_id)
                         .where(JobRun.id.in_(ids[start:start + 500])))
                out.update(dict(db.session.execute(query).all()))
        return out

    def overdue(self, count: int, every: float, down: float) -> list[str]:
        """With the beat stopped: jobs whose last instant was `down` + every/2 seconds ago (the
        beat went down `down` s ago), half of them with each misfire policy. Returns the labels the catch-up counts are split by."""
        now = time.time()
        # The beat went down `down` s ago, half a period after an instant: the next regular
        # instant after the restart is half a period away, not a coincidence with the start.
        first_missed = lambda i: now - down + every / 2 + (i % 1000) / 1000  # noqa: E731
        half = count // 2
        self.schedule_many(half, "overdue-run-once", first_missed, every, misfire_policy="run_once")
        self.schedule_many(count - half, "overdue-skip", first_missed, every, tag_base=half,
                           misfire_policy="skip")
        return ["run_once", "skip"]

    def catch_up_split(self, items: list[tuple[float, dict]]) -> dict[str, int]:
        policy = self._run_field(items, "misfire_policy")
        counts = {"run_once": 0, "skip": 0}
        for _, rid in self._run_ids(items):
            counts[policy.get(rid, "?")] = counts.get(policy.get(rid, "?"), 0) + 1
        return counts

    def marker(self) -> tuple[object, float]:
        """Add a job due now (for the cold start); return its matcher and due instant."""
        due = time.time()
        self.schedule_many(1, "marker", lambda i: due, 86400, sync=False)
        from sqlalchemy import select

        from webapp.extensions import db
        from webapp.models import Job

        job_id = db.session.scalar(select(Job.id).where(Job.name == "marker-000000"))
        return self.matcher(job_id), due

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
        watch_pause(result, listener, self.matcher(job.id), t0, time.time(), due)

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


# -- the Celery beats: messages tagged in their arguments ----------------------------------


class Tagged:
    """What the Celery beats share: their entries send system.sleep with args=[tag], and the
    bench knows each tag's first due instant (self.first_due) and reads the tag back."""

    def __init__(self, server: RedisServer, folder: Path, db_number: int, first_tag: int = 1):
        self.stack = CeleryStack(folder, server, db_number)
        self.stack.instance.mkdir(parents=True)
        self.broker = redis.Redis.from_url(self.stack.broker_url)
        self.tags = itertools.count(first_tag)
        self.first_due: dict[int, float] = {}  # tag -> first due instant
        self.beat: subprocess.Popen | None = None

    def stop_beat(self) -> None:
        if self.beat is not None:
            stop_beat(self.beat)
            self.beat = None

    def close(self) -> None:
        self.stop_beat()
        self.broker.close()

    @staticmethod
    def tag_of(headers: dict) -> int | None:
        try:
            args = ast.literal_eval(headers.get("argsrepr") or "")
            return int(args[0])
        except (ValueError, SyntaxError, TypeError, IndexError):
            return None

    def matcher(self, tag: int):
        return lambda headers: self.tag_of(headers) == tag

    def listener(self) -> "Listener":
        return Listener(self.stack.broker_url)

    def lateness(self, items: list[tuple[float, dict]]) -> list[float]:
        """received - due, for the first message of each entry."""
        out = {}
        for received, headers in items:
            tag = self.tag_of(headers)
            if tag in self.first_due and tag not in out:
                out[tag] = received - self.first_due[tag]
        return list(out.values())

    def catch_up_split(self, items) -> dict[str, int]:
        return {"celery": len(items)}

    def _await(self, tag: int, t0: float, due: float, result: Latency, listener: "Listener") -> None:
        """Note when the tagged message arrived after max(change, due), or a failure."""
        received = listener.wait(self.matcher(tag))
        if received is None:
            result.failures += 1
        else:
            result.samples.append(received - max(t0, due))


# -- celery-redbeat ------------------------------------------------------------------------


class RedBeat(Tagged):
    """A redbeat.RedBeatScheduler beat on the same Celery app, and its entry API in this process."""

    name = "redbeat"

    def __init__(self, server: RedisServer, folder: Path, db_number: int, start: bool = True):
        from bench.redbeat_app import make_app

        super().__init__(server, folder, db_number)
        self.app = make_app(self.stack.broker_url)
        if start:
            self.start_beat()

    def start_beat(self) -> None:
        self.beat = spawn_beat(self.stack, f"redbeat-beat-db{self.stack.db_number}",
                               ["-A", "bench.redbeat_app", "beat", "-S", "redbeat.RedBeatScheduler",
                                "--max-interval", str(int(self.max_interval)), "--loglevel", "INFO"],
                               REDBEAT_MAX_LOOP_INTERVAL=str(self.max_interval))
        lock = self.app.redbeat_conf.lock_key
        wait_for(lambda: self.broker.exists(lock), timeout=WAIT, message="redbeat to take its lock")

    def stop_beat(self) -> None:
        if self.beat is not None:
            super().stop_beat()
            self.broker.delete(self.app.redbeat_conf.lock_key)  # as after its lock expires

    @property
    def max_interval(self) -> float:
        from bench.redbeat_app import MAX_LOOP_INTERVAL

        return MAX_LOOP_INTERVAL

    def close(self) -> None:
        super().close()
        self.app.close()

    # -- helpers

    def entry(self, name: str, every: timedelta, tag: int, last_run_at: datetime | None = None):
        from celery.schedules import schedule
        from redbeat import RedBeatSchedulerEntry

        return RedBeatSchedulerEntry(name, "system.sleep", schedule(run_every=every, app=self.app),
                                     args=[tag], app=self.app, last_run_at=last_run_at)

    def bulk_entries(self, count: int, prefix: str) -> float:
        started = time.perf_counter()
        for i in range(count):
            self.entry(f"{prefix}-{i:05d}", timedelta(days=1), next(self.tags)).save()
        return time.perf_counter() - started

    def schedule_many(self, count: int, prefix: str, first_due, every: float, tag_base: int = 0) -> float:
        """Save `count` entries of `every` seconds, entry i first due at first_due(i), tagged
        tag_base + i. Saved with last_run_at = due - every; redbeat scores such an entry (last
        run in the past) too early (see README), so the bench sets the score to the due instant,
        as redbeat's own save() does for an entry that has just run."""
        started = time.perf_counter()
        key = self.app.redbeat_conf.schedule_key
        pipe = self.broker.pipeline(transaction=False)
        for i in range(count):
            due, tag = first_due(i), tag_base + i
            self.first_due[tag] = due
            last = datetime.fromtimestamp(due - every, timezone.utc)
            entry = self.entry(f"{prefix}-{tag:06d}", timedelta(seconds=every), tag, last_run_at=last).save()
            pipe.zadd(key, {entry.key: due})
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        return time.perf_counter() - started

    def overdue(self, count: int, every: float, down: float) -> list[str]:
        """Entries whose last run was `down` seconds ago (the beat is stopped)."""
        last = datetime.now(timezone.utc) - timedelta(seconds=down + every / 2)  # as Ours.overdue
        for i in range(count):
            self.entry(f"overdue-{i:06d}", timedelta(seconds=every), 10_000_000 + i, last_run_at=last).save()
        return ["celery"]

    def marker(self):
        tag = next(self.tags)
        entry = self.entry("marker", timedelta(days=1), tag)
        entry.last_run_at = None  # never run: due now
        entry.save()
        return self.matcher(tag), time.time()

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

    def pause(self, label: str, i: int, result: Latency, listener: Listener, rng: random.Random) -> None:
        tag = next(self.tags)
        now = datetime.now(timezone.utc)
        due = now.timestamp() + 1.0
        # last_run_at now and an interval of 1 s: due in 1 s (and its score in Redis says so).
        entry = self.entry(f"{label}-pause-{i}", timedelta(seconds=1), tag, last_run_at=now).save()
        sleep_until(due - rng.uniform(0.0, 0.1))
        t0 = time.time()
        entry.delete()
        watch_pause(result, listener, self.matcher(tag), t0, time.time(), due)

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


# -- Celery's own beat (PersistentScheduler) ----------------------------------------------


class Persistent(Tagged):
    """Celery's default beat: the schedule is a setting, read when the beat starts."""

    name = "celery PersistentScheduler"

    def __init__(self, server: RedisServer, folder: Path, db_number: int, start: bool = True):
        from bench.persistent_app import MAX_LOOP_INTERVAL

        super().__init__(server, folder, db_number, first_tag=20_000_000)
        self.max_interval = MAX_LOOP_INTERVAL
        self.entries: list[list] = []
        if start:
            self.start_beat()

    def start_beat(self) -> None:
        """Write the schedule setting and start the beat (which is how a change is applied)."""
        schedule = self.stack.folder / "beat_schedule.json"
        schedule.write_text(json.dumps(self.entries))
        self.beat = spawn_beat(self.stack, f"persistent-beat-db{self.stack.db_number}",
                               ["-A", "bench.persistent_app", "beat", "-s",
                                str(self.stack.folder / "celerybeat-schedule"), "--max-interval",
                                str(int(self.max_interval)), "--loglevel", "INFO"],
                               PERSISTENT_SCHEDULE=str(schedule))

    def schedule_many(self, count: int, prefix: str, first_due, every: float, tag_base: int = 0) -> float:
        """Add entries (applied when the beat next starts): entry i first due at first_due(i)."""
        for i in range(count):
            due, tag = first_due(i), tag_base + i
            self.first_due[tag] = due
            self.entries.append([f"{prefix}-{tag:06d}", every, tag, due - every])
        return 0.0

    def bulk_entries(self, count: int, prefix: str) -> float:
        now = time.time()
        return self.schedule_many(count, prefix, lambda i: now + 86400, 86400, tag_base=30_000_000)

    def overdue(self, count: int, every: float, down: float) -> list[str]:
        last = time.time() - down - every / 2  # as Ours.overdue
        for i in range(count):
            self.entries.append([f"overdue-{i:06d}", every, 10_000_000 + i, last])
        return ["celery"]

    def marker(self):
        tag = next(self.tags)
        self.entries.append(["marker", 86400, tag, time.time() - 86400])  # due now
        return self.matcher(tag), time.time()

    def burst(self, jobs: int, lead: float) -> Burst:
        """Entries due at T in the setting; the beat starts before T (its start is the setup)."""
        started = time.time()
        due = math.ceil(started + lead)
        self.schedule_many(jobs, "burst", lambda i: due, 86400)
        self.stop_beat()
        self.start_beat()
        return measure_burst(self.name, self.broker, jobs, due)


# -- the embedded mode (APScheduler in a web process) --------------------------------------


class DbListener:
    """Like Listener, for the embedded mode: polls the runs table for new runs (every 5 ms)."""

    def __init__(self, database: Path):
        self.database = database
        self.timeout = WAIT
        self.messages: queue_mod.Queue = queue_mod.Queue()
        self.unmatched = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)
        last = connection.execute("SELECT coalesce(max(id), 0) FROM job_runs").fetchone()[0]
        try:
            while not self._stop.is_set():
                rows = connection.execute("SELECT id, job_id, status FROM job_runs WHERE id > ? ORDER BY id",
                                          (last,)).fetchall()
                received = time.time()
                for run_id, job_id, status in rows:
                    last = run_id
                    if status != "skipped":  # a run recorded as skipped is not sent to execute
                        self.messages.put((received, {"id": f"run-{run_id}", "job_id": job_id}))
                time.sleep(0.005)
        finally:
            connection.close()

    next = Listener.next
    wait = Listener.wait
    collect = Listener.collect

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Embedded(Ours):
    """The embedded mode: the admin's service in this process, the scheduler in another one
    (bench/embedded_host.py, as in a second gunicorn worker: changes reach it through the
    schedule revision within SCHEDULER_SYNC_SECONDS, 1 s). A run recorded is its "publish"."""

    name = "embedded (APScheduler)"

    def __init__(self, server: RedisServer, folder: Path, db_number: int, start: bool = True):
        from webapp import create_app

        self.stack = CeleryStack(folder, None, db_number)
        self.stack.instance.mkdir(parents=True)
        fresh_database(self.stack)
        os.environ["INSTANCE_PATH"] = str(self.stack.instance)
        self.app = create_app({**self.stack.config(), "USE_CELERY": False, "TESTING": False,
                               "SCHEDULER_ENABLED": False})
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.database = self.stack.instance / "scheduler.db"
        self.beat = None
        if start:
            self.start_beat()

    def start_beat(self) -> None:
        log_path = self.stack.folder / "embedded-host.log"
        with open(log_path, "ab") as fh:
            process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "embedded_host.py")],
                                       cwd=self.stack.folder, env=self.stack.env(USE_CELERY="false"),
                                       stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = log_path
        PROCESSES.append(process)
        self.beat = process

        def leading():
            with sqlite3.connect(self.database, timeout=10) as connection:
                return connection.execute("SELECT count(*) FROM scheduler_heartbeats").fetchone()[0] > 0

        wait_for(leading, timeout=WAIT, message="the embedded scheduler to lead")

    def close(self) -> None:
        from webapp.extensions import db

        self.stop_beat()
        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()

    def listener(self) -> DbListener:
        return DbListener(self.database)

    def schedule_many(self, *args, **kwargs) -> float:
        kwargs["sync"] = False  # nothing to project: the scheduler reads the database
        return super().schedule_many(*args, **kwargs)

    def matcher(self, job_id: int):
        return lambda headers: headers.get("job_id") == job_id

    def burst(self, jobs: int, lead: float) -> Burst:
        started = time.time()
        due = math.ceil(started + lead)
        self.schedule_many(jobs, "burst", lambda i: due, 86400)

        def recorded():
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as connection:
                return connection.execute("SELECT count(*) FROM job_runs").fetchone()[0]

        return measure_burst(self.name, recorded, jobs, due)


# -- burst measurement ---------------------------------------------------------------------


def measure_burst(system: str, counter, jobs: int, due: float) -> Burst:
    """Poll until all `jobs` messages are there (no worker consumes them); counter is the
    broker (its queue lengths are counted) or a function that returns the count."""
    if isinstance(counter, redis.Redis):
        broker = counter
        counter = lambda: queued_count(broker)  # noqa: E731
    result = Burst(system, jobs, lead=due - time.time())
    if result.lead < 0.5:
        result.note = f"setup overran T by {-result.lead:.1f}s"
    if counter():
        result.note += " messages before T"
    progress_at, count = time.time(), 0
    cap = due + 900
    while True:
        now = time.time()
        count = counter()
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
    listener = system.listener()

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
        "sqlalchemy-celery-beat": pkg("sqlalchemy-celery-beat"),
        "APScheduler": pkg("APScheduler"),
        "SQLAlchemy": pkg("SQLAlchemy"),
        "gunicorn": pkg("gunicorn"),
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


def render_text(title, header, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render_markdown(title, header, rows) -> str:
    return "\n".join([f"### {title}", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


