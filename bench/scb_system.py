"""sqlalchemy-celery-beat as a system of the beat benchmark (bench/beat_bench.py).

Its beat (`sqlalchemy_celery_beat.schedulers:DatabaseScheduler`, app bench/scb_app.py) reads
its schedule from a SQLite file in the system's folder; this process changes the schedule the
way a user's app does, through the library's models and session (PeriodicTask, IntervalSchedule,
SessionManager). The beat notices a change by the timestamp in the one row of
celery_periodictaskchanged, which the models' ORM events bump on every insert, update and
delete of a PeriodicTask (bulk statements bump it with PeriodicTaskChanged.update_from_session),
and then reloads every enabled task.

"Due at X" is written as last_run_at = X - interval: an interval schedule is due when
last_run_at + interval has passed. (A NULL last_run_at is not "due now" here, unlike redbeat:
the beat takes it as "now" at each load, so such a task is first due one interval after the
beat last reloaded its schedule.)
"""

from __future__ import annotations

import json
import math
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from bench.beat_bench import (SETTLE, WAIT, Burst, Latency, Listener, Tagged, log, measure_burst,
                              sleep_until, spawn_beat, watch_pause)
from tests.processes import RedisServer

DAY = 86400
SCHEDULER = "sqlalchemy_celery_beat.schedulers:DatabaseScheduler"
TASK = "system.sleep"


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class SqlaBeat(Tagged):
    """A sqlalchemy-celery-beat DatabaseScheduler beat on the same Celery app, and its models here."""

    name = "sqlalchemy-celery-beat"

    def __init__(self, server: RedisServer, folder: Path, db_number: int, start: bool = True):
        from sqlalchemy import text
        from sqlalchemy_celery_beat.session import SessionManager

        from bench.scb_app import engine_options

        super().__init__(server, folder, db_number)
        self.db_number = db_number
        self.db_path = self.stack.instance / "scb-schedule.db"
        self.dburi = f"sqlite:///{self.db_path}"
        self.ready_file = self.stack.folder / "scb-beat.ready"
        self._intervals: dict[tuple, int] = {}  # (every, period) -> IntervalSchedule id
        # The library's own session factory (a NullPool engine outside a forked worker).
        manager = SessionManager()
        self.engine, self.Session = manager.create_session(self.dburi, **engine_options(self.dburi))
        manager.prepare_models(self.engine)  # creates its tables
        with self.engine.connect() as conn:  # like the admin's SQLite (persistent in the file)
            conn.execute(text("PRAGMA journal_mode=WAL"))
        if start:
            self.start_beat()

    @property
    def max_interval(self) -> float:
        from bench.scb_app import MAX_LOOP_INTERVAL

        return MAX_LOOP_INTERVAL

    def start_beat(self) -> None:
        """Start the beat; return once its scheduler has read the schedule (beat_init)."""
        if self.beat is not None and self.beat.poll() is None:
            return
        self.ready_file.unlink(missing_ok=True)
        self.beat = spawn_beat(self.stack, f"scb-beat-db{self.db_number}",
                               ["-A", "bench.scb_app", "beat", "-S", SCHEDULER, "--loglevel", "INFO",
                                "--max-interval", str(int(self.max_interval))],
                               SCB_DBURI=self.dburi, SCB_MAX_LOOP_INTERVAL=str(self.max_interval),
                               SCB_READY_FILE=str(self.ready_file))
        deadline = time.time() + WAIT
        while not self.ready_file.exists():
            if self.beat.poll() is not None:
                raise RuntimeError(f"the sqlalchemy-celery-beat beat exited ({self.beat.returncode}); "
                                   f"see {self.beat.log_path}")
            if time.time() > deadline:
                raise AssertionError(f"timed out after {WAIT}s waiting for the beat to start")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the beat (SIGTERM: it writes its pending last_run_at values first)."""
        super().close()
        self.engine.dispose()

    # -- helpers

    def interval_id(self, session, seconds: float) -> int:
        """Return the id of the IntervalSchedule of `seconds` (get or create, as its README does):
        in seconds if whole, else in microseconds (its Period.MICROSECONDS)."""
        from sqlalchemy_celery_beat.models import IntervalSchedule, Period

        if seconds <= 0:
            raise ValueError("an interval must be positive")
        if float(seconds).is_integer():
            every, period = int(seconds), Period.SECONDS
        else:
            every, period = round(seconds * 1_000_000), Period.MICROSECONDS
        if (every, period) not in self._intervals:
            model = session.query(IntervalSchedule).filter_by(every=every, period=period).first()
            if model is None:
                model = IntervalSchedule(every=every, period=period)
                session.add(model)
                session.flush()
            self._intervals[every, period] = model.id
        return self._intervals[every, period]

    def interval(self, session, seconds: float):
        from sqlalchemy_celery_beat.models import IntervalSchedule

        return session.get(IntervalSchedule, self.interval_id(session, seconds))

    def new_task(self, session, name: str, every: float, tag: int, last_run_at: datetime,
                 enabled: bool = True):
        """Add a PeriodicTask (system.sleep, args [tag]) to the session; its ORM event marks the change."""
        from sqlalchemy_celery_beat.models import PeriodicTask

        task = PeriodicTask(name=name, task=TASK, args=json.dumps([tag]),
                            schedule_model=self.interval(session, every), last_run_at=last_run_at,
                            enabled=enabled)
        session.add(task)
        return task

    def row(self, tag: int, name: str, every_id: int, last_run_at: datetime) -> dict:
        return {"name": name, "task": TASK, "args": json.dumps([tag]), "kwargs": "{}", "headers": "{}",
                "enabled": True, "one_off": False, "total_run_count": 0, "description": "",
                "discriminator": "intervalschedule", "schedule_id": every_id,
                "last_run_at": last_run_at}

    def bulk_insert(self, rows_of: Callable[[int], list[dict]], every: float) -> float:
        """Insert rows in one transaction (no ORM events) and mark the change; return seconds."""
        from sqlalchemy import insert
        from sqlalchemy_celery_beat.models import PeriodicTask, PeriodicTaskChanged

        started = time.perf_counter()
        with self.Session() as session:
            rows = rows_of(self.interval_id(session, every))
            for start in range(0, len(rows), 5000):
                session.execute(insert(PeriodicTask), rows[start:start + 5000])
            # A bulk statement fires no ORM event: the README's way to tell the beat.
            PeriodicTaskChanged.update_from_session(session, commit=False)
            session.commit()
        return time.perf_counter() - started

    # -- bulk schedules

    def bulk_entries(self, count: int, prefix: str) -> float:
        """Add `count` schedules of 1 day, last run now (due in a day); return seconds."""
        now = datetime.now(timezone.utc)
        return self.bulk_insert(lambda every_id: [self.row(next(self.tags), f"{prefix}-{i:05d}", every_id, now)
                                                  for i in range(count)], DAY)

    def schedule_many(self, count: int, prefix: str, first_due: Callable[[int], float], every: float,
                      tag_base: int = 0) -> float:
        """Add `count` schedules of `every` s, schedule i first due at epoch second first_due(i)
        (last_run_at = first_due(i) - every), tagged tag_base + i; return seconds."""
        def rows(every_id: int) -> list[dict]:
            out = []
            for i in range(count):
                due, tag = first_due(i), tag_base + i
                self.first_due[tag] = due
                out.append(self.row(tag, f"{prefix}-{tag:06d}", every_id, utc(due - every)))
            return out

        return self.bulk_insert(rows, every)

    def overdue(self, count: int, every: float, down: float) -> list[str]:
        """With the beat stopped: `count` schedules of `every` s whose last run was `down` s ago
        (the state after the beat was down that long). Returns the labels of catch_up_split."""
        if self.beat is not None and self.beat.poll() is None:
            raise RuntimeError("overdue() needs the beat stopped (stop_beat() or start=False)")
        last_run = time.time() - down - every / 2  # as Ours.overdue
        self.schedule_many(count, "overdue", lambda i: last_run + every, every, tag_base=10_000_000)
        return ["celery"]

    def marker(self):
        """Add a task due now (for the cold start); return its matcher and due instant."""
        tag = next(self.tags)
        due = time.time()
        with self.Session() as session:
            self.new_task(session, "marker", DAY, tag, utc(due - DAY))  # a day since its last run
            session.commit()
        return self.matcher(tag), due

    # -- change to effect

    def add(self, label: str, i: int, result: Latency, listener: Listener) -> None:
        tag = next(self.tags)
        t0 = time.time()
        with self.Session() as session:
            # Interval 1 day, last run a day ago: due now.
            self.new_task(session, f"{label}-add-{i}", DAY, tag, utc(t0 - DAY))
            session.commit()
        result.calls.append(time.time() - t0)
        self._await(tag, t0, t0, result, listener)

    def update(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        tag = next(self.tags)
        created = time.time()
        with self.Session() as session:
            task = self.new_task(session, f"{label}-update-{i}", DAY, tag, utc(created))  # due in a day
            session.commit()
            task_id = task.id
        gap()
        t0 = time.time()
        with self.Session() as session:
            task = self._get(session, task_id)
            task.schedule_model = self.interval(session, 1)  # last run at `created`: due now
            session.commit()
        result.calls.append(time.time() - t0)
        self._await(tag, t0, max(t0, created + 1.0), result, listener)
        self._delete(task_id)  # it would go on every second
        time.sleep(SETTLE)

    def _get(self, session, task_id: int):
        from sqlalchemy_celery_beat.models import PeriodicTask

        return session.get(PeriodicTask, task_id)

    def _delete(self, task_id: int) -> None:
        with self.Session() as session:
            session.delete(self._get(session, task_id))
            session.commit()

    def pause(self, label: str, i: int, result: Latency, listener: Listener, rng: random.Random) -> None:
        tag = next(self.tags)
        now = time.time()
        due = now + 1.0
        with self.Session() as session:
            # Last run now and an interval of 1 s: due in 1 s.
            task = self.new_task(session, f"{label}-pause-{i}", 1, tag, utc(now))
            session.commit()
            task_id = task.id
        sleep_until(due - rng.uniform(0.0, 0.1))
        t0 = time.time()
        with self.Session() as session:
            self._get(session, task_id).enabled = False  # its pause
            session.commit()
        watch_pause(result, listener, self.matcher(tag), t0, time.time(), due)

    def resume(self, label: str, i: int, result: Latency, listener: Listener, gap) -> None:
        tag = next(self.tags)
        created = time.time()
        with self.Session() as session:
            task = self.new_task(session, f"{label}-resume-{i}", 1, tag, utc(created), enabled=False)
            session.commit()  # paused
            task_id = task.id
        gap()
        t0 = time.time()
        with self.Session() as session:
            self._get(session, task_id).enabled = True  # resumed
            session.commit()
        result.calls.append(time.time() - t0)
        self._await(tag, t0, max(t0, created + 1.0), result, listener)
        self._delete(task_id)  # it would go on every second
        time.sleep(SETTLE)

    # -- burst

    def burst(self, jobs: int, lead: float) -> Burst:
        started = time.time()
        due = math.ceil(started + lead)
        took = self.schedule_many(jobs, "burst", lambda i: due, DAY)
        log(f"  {self.name}: {jobs:,} schedules inserted in {took:.2f}s")
        return measure_burst(self.name, self.broker, jobs, due)
