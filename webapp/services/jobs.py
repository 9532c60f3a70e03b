"""The scheduler service: the one door to jobs and their scheduling, for every mode.

Each operation takes ids and plain values, owns its transaction (job row, schedule revision,
audit event), and after the commit tells the active backend what changed. The database is
committed first, so a backend that misses the call still converges on its next sync.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from flask import abort
from sqlalchemy import func, select, update

from tasks.runs import queue_run

from ..extensions import db
from ..models import ACTIVE_STATUSES, Job, JobRun, ScheduleRevision
from ..models.clock import to_db
from . import audit, jobspec
from .firing import next_fire
from .scheduler import backend


def _now() -> datetime:
    return datetime.now(timezone.utc)


def get(job_id: int) -> Job:
    """Return the job or abort with 404."""
    job = db.session.get(Job, job_id)
    if job is None:
        abort(404, description=f"There is no job {job_id}.")
    return job


def _bump_revision(job: Job) -> None:
    """Mark the job and the schedule as changed, in the current transaction."""
    job.revision = (job.revision or 0) + 1
    _bump_schedule()


def _bump_schedule() -> None:
    """Increase the global schedule revision that backends watch."""
    changed = db.session.execute(
        update(ScheduleRevision).where(ScheduleRevision.id == 1).values(value=ScheduleRevision.value + 1)
    ).rowcount
    if not changed:
        db.session.add(ScheduleRevision(id=1, value=1))


def check_name_free(name: str, job_id: int | None) -> None:
    """Raise JobErrors if another job already has this name."""
    query = select(Job.id).where(Job.name_key == name.casefold())
    if job_id is not None:
        query = query.where(Job.id != job_id)
    if db.session.scalar(query) is not None:
        raise jobspec.JobErrors({"name": f"A job named '{name}' already exists."})


def _apply(job: Job, spec: jobspec.JobSpec) -> None:
    """Copy checked values onto the job row."""
    job.name = spec.name
    job.description = spec.description
    job.task = spec.task
    job.queue = spec.queue
    job.params = spec.params
    job.schedule = spec.schedule
    job.misfire_policy = spec.misfire_policy
    job.max_concurrent = spec.max_concurrent
    job.limits = spec.limits or None


def add(data: Mapping[str, Any], username: str) -> Job:
    """Create a job from submitted fields; raise JobErrors and store nothing if invalid."""
    now = _now()
    spec = jobspec.parse(data, now=now)
    check_name_free(spec.name, None)
    job = Job(created_by=username, paused=spec.paused)
    _apply(job, spec)
    job.next_run_at = to_db(next_fire(job, now))
    db.session.add(job)
    _bump_revision(job)
    db.session.flush()
    audit.record(username, "create", "job", job.id, job.name, **_describe(job))
    db.session.commit()
    backend().job_changed(job.id)
    return job


def update_job(job_id: int, data: Mapping[str, Any], username: str) -> Job:
    """Change a job; its next run moves only if its schedule changed, and never to the past."""
    job = get(job_id)
    now = _now()
    spec = jobspec.parse(data, now=now, existing=job)
    check_name_free(spec.name, job.id)
    before = _describe(job)
    old_schedule = job.schedule
    _apply(job, spec)
    job.paused = spec.paused
    if job.schedule != old_schedule or job.next_run is None or job.next_run <= now:
        job.next_run_at = to_db(next_fire(job, now))
    elif job.paused:
        job.next_run_at = None
    _bump_revision(job)
    after = _describe(job)
    changes = {k: [before[k], after[k]] for k in after if before.get(k) != after[k]}
    audit.record(username, "edit", "job", job.id, job.name, changes=changes)
    db.session.commit()
    backend().job_changed(job.id)
    return job


def remove(job_id: int, username: str) -> str:
    """Delete a job (its runs stay in the history); return its name."""
    job = get(job_id)
    name = job.name
    audit.record(username, "delete", "job", job.id, name, **_describe(job))
    db.session.execute(update(JobRun).where(JobRun.job_id == job.id).values(job_id=None))
    db.session.delete(job)
    _bump_schedule()
    db.session.commit()
    backend().job_removed(job_id)
    return name


def pause(job_id: int, username: str) -> Job:
    """Stop a job from firing, at once."""
    return _set_paused(job_id, username, True)


def resume(job_id: int, username: str) -> Job:
    """Let a paused job fire again, from its next instant after now (nothing missed is run)."""
    return _set_paused(job_id, username, False)


def _set_paused(job_id: int, username: str, paused: bool) -> Job:
    """Pause or resume a job; doing it twice changes and records nothing the second time."""
    job = get(job_id)
    if job.paused != paused:
        job.paused = paused
        job.next_run_at = to_db(next_fire(job, _now()))  # None while paused
        _bump_revision(job)
        audit.record(username, "pause" if paused else "resume", "job", job.id, job.name)
        db.session.commit()
        backend().job_changed(job.id)
    return job


def run_now(job_id: int, username: str) -> JobRun:
    """Queue a manual run of the job and send it for execution (skipped if at its limit)."""
    job = get(job_id)
    audit.record(username, "run", "job", job.id, job.name)
    run = queue_run(job, trigger="manual", by=username)
    if run.status == "queued":
        backend().dispatch(run.id)
    return run


def status(job_id: int) -> dict[str, Any]:
    """Return a job's state: paused, next runs, active runs."""
    job = get(job_id)
    active = db.session.scalar(
        select(func.count()).select_from(JobRun).where(
            JobRun.job_id == job.id, JobRun.status.in_(ACTIVE_STATUSES)
        )
    )
    return {
        "id": job.id,
        "name": job.name,
        "paused": job.paused,
        "next_run": job.next_run,
        "next_runs": job.schedule.next_times(job.next_run, 4) if job.next_run else [],
        "active_runs": active,
        "last_run_status": job.last_run.status if job.last_run else None,
    }


def sync() -> dict[str, int]:
    """Reconcile the active backend with the database."""
    return backend().sync()


def preview(data: Mapping[str, Any], count: int = 5) -> tuple[Any, list[datetime]]:
    """Return the schedule the fields describe and its next fire times (raises ScheduleError)."""
    now = _now()
    schedule = jobspec.parse_schedule(data, now=now, anchor=now)
    return schedule, schedule.next_times(now, count)


def _describe(job: Job) -> dict[str, Any]:
    """Return the job's settings as plain values, for the audit log."""
    return {
        "task": job.task,
        "queue": job.queue,
        "schedule": job.schedule.describe(),
        "params": dict(job.params or {}),
        "misfire_policy": job.misfire_policy,
        "max_concurrent": job.max_concurrent,
        "limits": dict(job.limits or {}),
        "paused": job.paused,
    }

