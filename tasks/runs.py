"""The one place that records a run, whoever starts it: queue, claim, finish, fail, lose.

Both backends (APScheduler threads and Celery workers) and "run now" go through here, so a
run looks the same in the admin whichever mode executed it. Every function needs an app context.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback as tb
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import ACTIVE_STATUSES, Job, JobRun
from webapp.models.clock import to_db, utcnow

from . import registry

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 8 * 1024
MAX_ERROR_CHARS = 2000
# Serialises the overlap check and the insert of a run per process; the unique
# (job_id, scheduled_for) constraint guards fire instants across processes.
_queue_lock = threading.Lock()


@dataclass
class RunContext:
    """What a task function receives besides its parameters."""

    run_id: int
    job_id: int | None
    job_name: str
    attempt: int
    log: logging.Logger

    def artifact_path(self, filename: str) -> Path:
        """Return where this run may write a file that the admin offers for download."""
        folder = Path(current_app.config["ARTIFACT_DIR"]) / str(self.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / Path(filename).name


def worker_name() -> str:
    """Return this process and thread as 'host:pid/thread'."""
    return f"{socket.gethostname()}:{os.getpid()}/{threading.current_thread().name}"


def queue_run(
    job: Job,
    *,
    trigger: str = "schedule",
    by: str | None = None,
    scheduled_for: datetime | None = None,
    note: str | None = None,
) -> JobRun | None:
    """Record a run of the job as queued, or as skipped when it is at its concurrency limit.

    Returns None when that fire instant was already recorded (a second sender lost the race).
    """
    with _queue_lock:
        active = db.session.scalar(
            select(func.count())
            .select_from(JobRun)
            .where(JobRun.job_id == job.id, JobRun.status.in_(ACTIVE_STATUSES))
        )
        run = JobRun(**_run_fields(job, active, trigger=trigger, by=by,
                                   scheduled_for=scheduled_for, note=note))
        db.session.add(run)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return None
        job.last_run_id = run.id
        db.session.commit()
        return run


def _run_fields(job: Job, active: int, *, trigger: str, by: str | None,
                scheduled_for: datetime | None, note: str | None) -> dict[str, Any]:
    """Return the columns of a new run: queued, or skipped (at the limit, or with a note)."""
    now = utcnow()
    fields = {
        "job_id": job.id, "job_name": job.name, "task": job.task, "queue": job.queue,
        "params": dict(job.params or {}), "limits": dict(job.limits or {}) or None,
        "trigger": trigger, "triggered_by": by, "scheduled_for": to_db(scheduled_for),
        "status": "queued", "queued_at": now, "attempt": 1,
    }
    if active >= job.max_concurrent:
        note = f"Skipped: {active} run(s) still going, the job allows {job.max_concurrent}."
    if note:
        fields.update(status="skipped", finished_at=now, error=note)
    return fields


@dataclass(frozen=True)
class QueuedRun:
    """What sending a run needs, without an ORM object per run."""

    id: int
    job_id: int
    task: str
    queue: str
    limits: dict[str, Any] | None


# The columns of a job that recording its runs reads (queue_many takes rows of just these).
RUN_SOURCE_COLUMNS = (Job.id, Job.name, Job.task, Job.queue, Job.params, Job.limits,
                      Job.max_concurrent, Job.paused)


def queue_many(dues: list[tuple[Any, datetime, str, str | None]],
               next_runs: dict[int, datetime | None] | None = None) -> list[QueuedRun]:
    """Record many due instants (job, instant, trigger, note) in one transaction.

    The same rules as queue_run, for a beat's batch: one count query for the active runs of
    every job, one multi-row insert that leaves out instants already recorded, and one
    executemany that stores each job's last run and next run (next_runs: job id -> next fire
    time). A job is a Job or a row of RUN_SOURCE_COLUMNS. This is the beat's hot path, so it
    runs Core statements on the session's connection, not the ORM's unit of work.
    Returns the runs that were queued (not skipped, not duplicates).
    """
    if not dues:
        return []
    ids = sorted({job.id for job, *_ in dues})
    active: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        active.update(db.session.execute(
            select(JobRun.job_id, func.count()).where(
                JobRun.job_id.in_(ids[start:start + 500]), JobRun.status.in_(ACTIVE_STATUSES)
            ).group_by(JobRun.job_id)
        ).all())
    rows = []
    for job, instant, trigger, note in dues:
        fields = _run_fields(job, active.get(job.id, 0), trigger=trigger, by=None,
                             scheduled_for=instant, note=note)
        if fields["status"] == "queued":
            active[job.id] = active.get(job.id, 0) + 1
        rows.append(fields)
    runs = JobRun.__table__
    insert = _insert_ignoring_duplicates().returning(
        runs.c.id, runs.c.job_id, runs.c.task, runs.c.queue, runs.c.limits, runs.c.status)
    connection = db.session.connection()
    inserted = connection.execute(insert, rows).all()
    latest: dict[int, int] = {}
    for row in inserted:
        latest[row.job_id] = max(row.id, latest.get(row.job_id, 0))
    changes = {job_id: {"_id": job_id, "_last": run_id, "_next": None, "_move": False}
               for job_id, run_id in latest.items()}
    for job_id, following in (next_runs or {}).items():
        change = changes.setdefault(job_id, {"_id": job_id, "_last": None})
        change.update(_next=to_db(following), _move=True)
    if changes:
        jobs = Job.__table__
        connection.execute(
            update(jobs).where(jobs.c.id == bindparam("_id")).values(
                last_run_id=func.coalesce(bindparam("_last"), jobs.c.last_run_id),
                next_run_at=case((bindparam("_move"), bindparam("_next")), else_=jobs.c.next_run_at),
            ),
            list(changes.values()),
        )
    db.session.commit()
    return [QueuedRun(r.id, r.job_id, r.task, r.queue, r.limits) for r in inserted if r.status == "queued"]


def _insert_ignoring_duplicates():
    """Return an INSERT of runs that skips rows whose (job, instant) is already recorded."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(JobRun.__table__).on_conflict_do_nothing(index_elements=["job_id", "scheduled_for"])


def claim(run_id: int, *, worker: str | None = None, attempt: int = 1, take_over: bool = False) -> bool:
    """Mark a queued run as running; return False if another executor already took it.

    take_over also claims a run left 'running': a message delivered again because the worker
    that had it died (the visibility timeout is longer than any time limit, so that worker is
    gone, not slow).
    """
    claimable = ("queued", "running") if take_over else ("queued",)
    result = db.session.execute(
        update(JobRun)
        .where(JobRun.id == run_id, JobRun.status.in_(claimable))
        .values(status="running", started_at=utcnow(), worker=worker or worker_name(), attempt=attempt)
    )
    db.session.commit()
    return result.rowcount == 1


def finish(run_id: int, result: Any) -> None:
    """Record a run as succeeded with a JSON summary of its result."""
    run = db.session.get(JobRun, run_id)
    run.status = "succeeded"
    run.result = _summary(result)
    if isinstance(result, dict) and result.get("artifact"):
        run.artifact = str(result["artifact"])
    _close(run)


def fail(run_id: int, exc: BaseException, *, status: str = "failed") -> None:
    """Record a run as failed with its error and traceback (or queued again, for a retry)."""
    run = db.session.get(JobRun, run_id)
    run.status = status
    run.error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    run.traceback = "".join(tb.format_exception(exc))[-20000:]
    if status == "queued":
        run.error = f"Attempt {run.attempt} failed, retrying: {run.error}"[:MAX_ERROR_CHARS]
        db.session.commit()
        return
    _close(run)


def _close(run: JobRun) -> None:
    """Stamp the end time and duration and commit."""
    run.finished_at = utcnow()
    if run.started_at:
        run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)
    db.session.commit()


def _summary(result: Any) -> dict[str, Any]:
    """Return a result as a small JSON-safe dict, cut down when too large."""
    if result is None:
        return {}
    data = result if isinstance(result, dict) else {"value": result}
    text = json.dumps(data, default=str)
    if len(text) > MAX_RESULT_BYTES:
        return {"truncated": True, "preview": text[:MAX_RESULT_BYTES]}
    return json.loads(text)


def execute(run_id: int, *, worker: str | None = None, attempt: int = 1, can_retry: bool = False,
            take_over: bool = False) -> str | None:
    """Claim a queued run, call its task type and record the outcome; return the status.

    With can_retry, a failure leaves the run queued with its error and returns "retry", and
    the caller schedules the next attempt.
    """
    if not claim(run_id, worker=worker, attempt=attempt, take_over=take_over):
        log.info("run %s was already taken: this delivery does nothing", run_id)
        return None
    run = db.session.get(JobRun, run_id)
    task = registry.get(run.task)
    started = time.monotonic()
    try:
        if task is None:
            raise LookupError(f"Unknown task type '{run.task}'")
        context = RunContext(run.id, run.job_id, run.job_name, attempt, log)
        result = task.func(context, **(run.params or {}))
    except Exception as exc:  # every failure of a task is recorded, never raised into the scheduler
        db.session.rollback()
        if can_retry:
            fail(run_id, exc, status="queued")
            log.info("run %s attempt %d failed, will retry: %s", run_id, attempt, exc)
            return "retry"
        fail(run_id, exc)
        log.warning("run %s of %s failed after %.1fs: %s", run_id, run.task, time.monotonic() - started, exc)
        return "failed"
    try:
        finish(run_id, result)
    except Exception as exc:  # a result that cannot be stored must not leave the run "running"
        db.session.rollback()
        fail(run_id, exc)
        return "failed"
    return "succeeded"


def mark_lost(where, reason: str) -> int:
    """Mark the active runs matched by a SQL condition as lost; return how many."""
    result = db.session.execute(
        update(JobRun)
        .where(where, JobRun.status.in_(ACTIVE_STATUSES))
        .values(status="lost", finished_at=utcnow(), error=reason)
    )
    db.session.commit()
    return result.rowcount
