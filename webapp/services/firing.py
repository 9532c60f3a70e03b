"""What happens when a job is due, the same in both modes: record the run, move the clock on.

The job row's next_run_at is the single truth of when a job fires next. A backend wakes up
at that instant and calls fire(); a wake-up that does not match the row (stale, edited,
paused) does nothing, which is what makes an edit never fire a job by surprise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from tasks.runs import queue_run

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


def fire(job_id: int, now: datetime) -> JobRun | None:
    """Record the due run of a job at its next_run_at and advance it; None if not due."""
    job = db.session.get(Job, job_id)
    if job is None or job.paused or job.next_run is None:
        return None
    instant = job.next_run
    if instant > utc(now) + timedelta(seconds=1):
        return None
    following = to_db(job.schedule.next_after(instant))
    job.next_run_at = following
    run = queue_run(job, trigger="schedule", scheduled_for=instant)
    if run is None:
        # That instant was already recorded (by another sender): still move the clock on.
        job = db.session.get(Job, job_id)
        if job is not None and job.next_run == instant:
            job.next_run_at = following
            db.session.commit()
    return run


def catch_up(job: Job, now: datetime) -> JobRun | None:
    """Apply the misfire policy to a job whose next run passed while nothing was firing.

    Instants late by less than the grace time are not misfires: the backend fires them
    normally. Beyond it, 'run_once' runs the job once now; 'skip' records one skipped run
    that says how many instants were missed. Either way the next run is computed from now.
    """
    grace = timedelta(seconds=current_app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"])
    missed_from = job.next_run
    now = utc(now)
    if job.paused or missed_from is None or missed_from >= now - grace:
        return None
    missed = 0
    moment = missed_from
    while moment is not None and moment <= now and missed < _MISSED_COUNT_CAP:
        missed += 1
        moment = job.schedule.next_after(moment)
    job.next_run_at = to_db(job.schedule.next_after(now))
    if job.misfire_policy == "skip":
        note = (
            f"Skipped {missed} run(s) missed while the scheduler was down, "
            f"from {missed_from:%Y-%m-%d %H:%M:%S} UTC (misfire policy: skip)."
        )
        return queue_run(job, trigger="misfire", scheduled_for=missed_from, note=note)
    return queue_run(job, trigger="misfire", scheduled_for=missed_from)
