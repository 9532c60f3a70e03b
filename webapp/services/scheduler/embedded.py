"""The embedded backend: APScheduler in the web process, fed from the database.

Every web process runs a small sync loop. The one that holds the file lock is the leader: it
owns an APScheduler holding the active jobs, a thread pool running their tasks, and publishes
a heartbeat. The others serve pages only and keep trying the lock, so one of them takes over
if the leader dies. Changes made in the leader apply at once; changes made in another process
reach the leader through the schedule revision counter within SCHEDULER_SYNC_SECONDS.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as APSThreadPool
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from flask import Flask
from sqlalchemy import func, select

from tasks import runs

from ...extensions import db
from ...models import Job, JobRun, ScheduleRevision, SchedulerHeartbeat
from ...models.clock import from_db, utcnow
from ...schedules import Schedule
from .. import firing
from .lock import FileLock

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5
HEARTBEAT_NAME = "embedded"
FULL_SYNC_EVERY = timedelta(seconds=60)
SYNC_MARGIN = timedelta(seconds=5)


class ScheduleTrigger(BaseTrigger):
    """An APScheduler trigger that asks webapp.schedules, so cron means standard cron."""

    def __init__(self, schedule: Schedule):
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time, now):
        """Return the schedule's next instant after the previous one (or after now)."""
        return self.schedule.next_after(previous_fire_time or now)

    def __str__(self) -> str:
        return self.schedule.describe()


class EmbeddedBackend:
    """Fire jobs from an in-process APScheduler while this process holds the lock."""

    name = "embedded"

    def __init__(self, app: Flask):
        self.app = app
        self.lock = FileLock(app.config["SCHEDULER_LOCK_FILE"])
        self.interval = app.config["SCHEDULER_SYNC_SECONDS"]
        self.threads = app.config["SCHEDULER_THREADS"]
        self.scheduler: BackgroundScheduler | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.started_at: datetime | None = None
        self._built: dict[int, int] = {}  # job id -> revision held by APScheduler
        self._synced_at: datetime | None = None  # naive UTC start of the last sync pass
        self._revision: int | None = None
        self._inflight: set[int] = set()
        self._last_beat = 0.0
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        """Return whether this process fires jobs."""
        return self.scheduler is not None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the sync loop, which takes the lock as soon as it is free."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="scheduler-sync", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        """Stop the loop, the scheduler and the pool, and release the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._mutex:
            scheduler, self.scheduler = self.scheduler, None
            pool, self.pool = self.pool, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if pool is not None:
            # Outside the mutex: finishing runs take it to leave the in-flight set.
            pool.shutdown(wait=True, cancel_futures=True)
        with self._mutex:
            self._built.clear()
            self._synced_at = None
            self._revision = None
            self.lock.release()

    def _loop(self) -> None:
        """Tick until stopped; a failing tick is logged and retried, never fatal."""
        while not self._stop.is_set():
            try:
                with self.app.app_context():
                    self.tick()
            except Exception:
                log.exception("scheduler sync failed; retrying")
            self._stop.wait(self.interval)

    def tick(self) -> None:
        """Take the lock if free; as leader, pick up changes and orphaned runs."""
        if not self.is_leader:
            if not self.lock.acquire():
                return
            self._become_leader()
        revision = db.session.scalar(select(ScheduleRevision.value).where(ScheduleRevision.id == 1))
        if revision != self._revision:
            self._revision = revision
            self._sync_changed()
        self._dispatch_orphans()
        self._heartbeat()

    def _become_leader(self) -> None:
        """Start APScheduler and the run pool, and rebuild the schedule from the database."""
        lost = runs.mark_lost(
            JobRun.status == "running", "The scheduler process running it stopped."
        )
        if lost:
            log.warning("marked %d runs of a previous scheduler process as lost", lost)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="run")
        scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": APSThreadPool(4)},
            # A busy scheduler fires late, never drops: downtime is handled by catch_up.
            job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1000},
        )
        scheduler.start()
        self.started_at = datetime.now(timezone.utc)
        self.scheduler = scheduler
        self.sync()
        log.info("this process (pid %d) now fires the jobs", os.getpid())

    # -- projection ----------------------------------------------------------------------

    def sync(self) -> dict[str, int]:
        """Rebuild every job from the database, applying the misfire policy to late ones."""
        if not self.is_leader:
            return {"added": 0, "removed": 0}
        with self._mutex:
            now = datetime.now(timezone.utc)
            self._synced_at = utcnow()
            for job in db.session.scalars(select(Job).where(Job.paused.is_(False))).all():
                run = firing.catch_up(job, now)
                if run is not None and run.status == "queued":
                    self._dispatch_queued(run.id)
            db.session.commit()
            current = dict(db.session.execute(select(Job.id, Job.revision)).all())
            for job_id in set(self._built) - set(current):
                self.job_removed(job_id)
            for job_id in current:
                self._project(db.session.get(Job, job_id))
            return {"jobs": len(current), "active": len(self.scheduler.get_jobs())}

    def _sync_changed(self) -> None:
        """Rebuild only the jobs whose revision moved, and drop deleted ones.

        Routinely only the jobs updated since the last pass are read (one edit must not make
        the leader re-read 100,000 rows); all of them when the job count differs from what
        APScheduler holds (jobs were added or deleted) or a minute has passed.
        """
        with self._mutex:
            started = utcnow()
            total = db.session.scalar(select(func.count()).select_from(Job))
            since = self._synced_at
            if since is None or total != len(self._built) or started - since > FULL_SYNC_EVERY:
                current = dict(db.session.execute(select(Job.id, Job.revision)).all())
                for job_id in set(self._built) - set(current):
                    self.job_removed(job_id)
            else:  # a margin for clocks of other processes and commits in flight
                current = dict(db.session.execute(select(Job.id, Job.revision).where(
                    Job.updated_at >= since - SYNC_MARGIN)).all())
            for job_id, revision in current.items():
                if self._built.get(job_id) != revision:
                    self._project(db.session.get(Job, job_id))
            self._synced_at = started

    def _project(self, job: Job) -> None:
        """Hold the job in APScheduler at its next_run_at, or drop it if it has none."""
        self._built[job.id] = job.revision
        key = str(job.id)
        if job.paused or job.next_run is None:
            self._remove_aps(key)
            return
        self.scheduler.add_job(
            self._fire,
            trigger=ScheduleTrigger(job.schedule),
            args=[job.id],
            id=key,
            name=job.name,
            next_run_time=job.next_run,
            replace_existing=True,
        )

    def _remove_aps(self, key: str) -> None:
        """Remove a job from APScheduler if it holds it."""
        try:
            self.scheduler.remove_job(key)
        except JobLookupError:
            pass

    def job_changed(self, job_id: int) -> None:
        """Apply a change at once when this process leads; otherwise the leader syncs."""
        if not self.is_leader:
            return
        with self._mutex:
            job = db.session.get(Job, job_id)
            if job is not None:
                self._project(job)

    def job_removed(self, job_id: int) -> None:
        """Drop a deleted job from APScheduler."""
        if not self.is_leader:
            return
        with self._mutex:
            self._built.pop(job_id, None)
            self._remove_aps(str(job_id))

    # -- execution ------------------------------------------------------------------------

    def _fire(self, job_id: int) -> None:
        """Record the job's due run (APScheduler thread) and hand it to the run pool."""
        with self.app.app_context():
            run = firing.fire(job_id, datetime.now(timezone.utc))
            if run is not None and run.status == "queued":
                self._dispatch_queued(run.id)
            job = db.session.get(Job, job_id)
            if job is not None and job.next_run is None:
                self.job_removed(job_id)  # a one-off that has fired, or a window that ended

    def dispatch(self, run_id: int) -> None:
        """Execute a queued run now if this process leads; otherwise the leader picks it up."""
        if self.is_leader:
            self._dispatch_queued(run_id)

    def _dispatch_queued(self, run_id: int | None) -> None:
        """Submit a queued run to the pool unless it is already there."""
        if run_id is None or self.pool is None:
            return
        with self._mutex:
            if run_id in self._inflight:
                return
            self._inflight.add(run_id)
        self.pool.submit(self._execute, run_id)

    def _execute(self, run_id: int) -> None:
        """Run one queued run in a pool thread."""
        try:
            with self.app.app_context():
                runs.execute(run_id)
        except Exception:
            log.exception("run %s could not be recorded", run_id)
        finally:
            with self._mutex:
                self._inflight.discard(run_id)

    def _dispatch_orphans(self) -> None:
        """Execute runs queued by other processes (run now clicked on a non-leader)."""
        queued = db.session.scalars(select(JobRun.id).where(JobRun.status == "queued"))
        for run_id in list(queued):
            self._dispatch_queued(run_id)

    # -- status ---------------------------------------------------------------------------

    def _live_state(self) -> dict[str, Any]:
        """Return this leader's own view of its scheduler and pool."""
        aps_jobs = self.scheduler.get_jobs()
        wakeups = [j.next_run_time for j in aps_jobs if j.next_run_time]
        busy = len(self._inflight)
        return {
            "running": self.scheduler.running,
            "threads": self.threads,
            "busy": min(busy, self.threads),
            "waiting": max(busy - self.threads, 0),
            "jobs": len(aps_jobs),
            "next_wakeup": min(wakeups).isoformat() if wakeups else None,
            "sync_seconds": self.interval,
        }

    def _heartbeat(self) -> None:
        """Publish the leader's state in the database every few seconds."""
        now = utcnow()
        if self._last_beat and (now.timestamp() - self._last_beat) < HEARTBEAT_SECONDS:
            return
        self._last_beat = now.timestamp()
        row = db.session.get(SchedulerHeartbeat, HEARTBEAT_NAME) or SchedulerHeartbeat(
            name=HEARTBEAT_NAME, started_at=self.started_at.replace(tzinfo=None)
        )
        row.owner = f"{socket.gethostname()}:{os.getpid()}"
        row.started_at = self.started_at.replace(tzinfo=None)
        row.beat_at = now
        row.state = self._live_state()
        db.session.add(row)
        db.session.commit()

    def status(self) -> dict[str, Any]:
        """Return the leader's state: live in the leader, from its heartbeat elsewhere."""
        row = db.session.get(SchedulerHeartbeat, HEARTBEAT_NAME)
        stale_after = max(3 * HEARTBEAT_SECONDS, 3 * self.interval)
        info: dict[str, Any] = {"mode": "embedded", "this_process_leads": self.is_leader}
        if self.is_leader:
            info.update(self._live_state(), owner=f"{socket.gethostname()}:{os.getpid()}",
                        started_at=self.started_at, beat_at=datetime.now(timezone.utc))
        elif row is not None:
            beat_at = from_db(row.beat_at)
            alive = (datetime.now(timezone.utc) - beat_at).total_seconds() < stale_after
            info.update(row.state, owner=row.owner, started_at=from_db(row.started_at),
                        beat_at=beat_at)
            info["running"] = bool(row.state.get("running")) and alive
        else:
            info["running"] = False
        if info.get("next_wakeup"):
            info["next_wakeup"] = datetime.fromisoformat(info["next_wakeup"])
        return info
