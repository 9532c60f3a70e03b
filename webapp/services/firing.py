"""What happens when a job is due, the same in both modes: record the run, move the clock on.

The job row's next_run_at is the truth of when a job fires next. The embedded backend wakes
at that instant and calls fire(); the Celery beat claims the instant in Redis and calls
fire_claimed(). Either way one function records it: on time, a 'schedule' run; later than the
grace time (the scheduler was down), the job's misfire policy decides. A wake-up that does not
match the row (stale, edited, paused) records nothing, so an edit never fires a job by surprise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from sqlalchemy import select

from tasks.runs import RUN_SOURCE_COLUMNS, QueuedRun, queue_many, queue_run

from ..extensions import db
from ..models import Job, JobRun
from ..models.clock import to_db
from ..schedules import utc

# How many missed instants a catch-up counts before it stops counting.
_MISSED_COUNT_CAP = 1000


def next_fire(job: Job, after: datetime) -> datetime | None:
    """Return when the job fires next after `after`, or None if paused or finished."""
    if job.paused:
        return None
    return job.schedule.next_after(after)


def grace() -> timedelta:
    """Return the lateness beyond which an instant counts as missed during downtime."""
    return timedelta(seconds=current_app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"])


def is_misfire(instant: datetime, now: datetime) -> bool:
    """Return whether an instant is too late to fire normally."""
    return utc(instant) < utc(now) - grace()


def _outcome(job: Job, instant: datetime, now: datetime) -> tuple[str, str | None]:
    """Return how a due instant is recorded: its trigger, and a note if it is skipped."""
    if not is_misfire(instant, now):
        return "schedule", None
    missed, moment = 0, instant
    while moment is not None and moment <= utc(now) and missed < _MISSED_COUNT_CAP:
        missed += 1
        moment = job.schedule.next_after(moment)
    if job.misfire_policy != "skip":
        return "misfire", None
    return "misfire", (f"Skipped {missed} run(s) missed while the scheduler was down, "
                       f"from {instant:%Y-%m-%d %H:%M:%S} UTC (misfire policy: skip).")


def _record_due(job: Job, instant: datetime, following: datetime | None, now: datetime) -> JobRun | None:
    """Record the run of a due instant (or the misfire policy's outcome) and store the next run."""
    job.next_run_at = to_db(following)
    trigger, note = _outcome(job, instant, now)
    return queue_run(job, trigger=trigger, scheduled_for=instant, note=note)


def _settle(job_id: int, instant: datetime, following: datetime | None, run: JobRun | None) -> None:
    """If the instant was already recorded by another sender, still move the clock on."""
    if run is not None:
        return
    job = db.session.get(Job, job_id)
    if job is not None and job.next_run == instant:
        job.next_run_at = to_db(following)
        db.session.commit()


def fire(job_id: int, now: datetime) -> JobRun | None:
    """Record the due run of a job at its next_run_at and advance it; None if not due."""
    job = db.session.get(Job, job_id)
    if job is None or job.paused or job.next_run is None:
        return None
    instant = job.next_run
    if instant > utc(now) + timedelta(seconds=1):
        return None
    following = following_instant(job, instant, now)
    run = _record_due(job, instant, following, now)
    _settle(job_id, instant, following, run)
    return run


def following_instant(job: Job, instant: datetime, now: datetime) -> datetime | None:
    """Return the next instant after a due one: after it when on time, after now when missed."""
    return job.schedule.next_after(utc(now) if is_misfire(instant, now) else instant)


def catch_up(job: Job, now: datetime) -> JobRun | None:
    """Apply the misfire policy to a job whose next run passed while nothing was firing.

    Instants late by less than the grace time are not misfires: the backend fires them
    normally. Beyond it, 'run_once' runs the job once now; 'skip' records one skipped run
    that says how many instants were missed. Either way the next run is computed from now.
    """
    instant = job.next_run
    if job.paused or instant is None or not is_misfire(instant, now):
        return None
    return _record_due(job, instant, job.schedule.next_after(utc(now)), now)


def fire_claimed_many(claims: list[tuple[int, datetime, datetime | None]], now: datetime) -> list[QueuedRun]:
    """Record a batch of instants the beat claimed in Redis, in one transaction.

    Each claim is (job id, instant, the next instant the beat moved the job to). Deleted and
    paused jobs are left out; an instant already recorded is not recorded again. Jobs are read
    as plain rows (the beat's hot path); a late instant loads its Job for the misfire policy.
    """
    jobs: dict[int, Any] = {}
    ids = sorted({job_id for job_id, _, _ in claims})
    for start in range(0, len(ids), 500):
        for row in db.session.execute(select(*RUN_SOURCE_COLUMNS).where(Job.id.in_(ids[start:start + 500]))):
            jobs[row.id] = row
    dues, next_runs = [], {}
    for job_id, instant, following in claims:
        job = jobs.get(job_id)
        if job is None or job.paused:
            continue
        next_runs[job_id] = following
        if is_misfire(instant, now):
            trigger, note = _outcome(db.session.get(Job, job_id), instant, now)
        else:
            trigger, note = "schedule", None
        dues.append((job, instant, trigger, note))
    return queue_many(dues, next_runs)


def fire_claimed(job_id: int, instant: datetime, following: datetime | None,
                 now: datetime) -> JobRun | None:
    """Record an instant the beat claimed in Redis; `following` is what it moved the job to."""
    job = db.session.get(Job, job_id)
    if job is None or job.paused:
        return None
    run = _record_due(job, instant, following, now)
    _settle(job_id, instant, following, run)
    return run
