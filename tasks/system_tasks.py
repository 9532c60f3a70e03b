"""System: maintenance of the platform itself, and diagnostics."""

import time
from datetime import timedelta
from pathlib import Path
import shutil

from flask import current_app
from sqlalchemy import delete, select

from webapp.extensions import db
from webapp.models import ACTIVE_STATUSES, JobRun
from webapp.models.clock import utcnow

from .registry import Param, task_type


@task_type(
    "system.prune_runs",
    queue="system",
    title="Prune run history",
    params=[Param("days", "int", label="Keep (days)", default=30, min=1, max=3660)],
)
def prune_runs(run, days=30):
    """Delete finished runs older than N days, and their files."""
    cutoff = utcnow() - timedelta(days=days)
    old = (JobRun.queued_at < cutoff) & JobRun.status.not_in(ACTIVE_STATUSES)
    ids = list(db.session.scalars(select(JobRun.id).where(old)))
    artifacts = Path(current_app.config["ARTIFACT_DIR"])
    for run_id in ids:
        shutil.rmtree(artifacts / str(run_id), ignore_errors=True)
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound variables
        db.session.execute(delete(JobRun).where(JobRun.id.in_(ids[start:start + 500])))
    db.session.commit()
    return {"deleted": len(ids), "older_than_days": days}


@task_type(
    "system.sleep",
    queue="system",
    title="Wait (diagnostic)",
    params=[Param("seconds", "float", default=5, min=0, max=86400)],
)
def sleep(run, seconds=5):
    """Wait for a while and succeed; shows long runs and overlap handling."""
    time.sleep(seconds)
    return {"slept": seconds}


@task_type(
    "system.fail",
    queue="system",
    title="Fail (diagnostic)",
    params=[Param("message", "str", default="Failing on purpose", max_length=500)],
)
def fail(run, message="Failing on purpose"):
    """Raise an error; shows how failures and their tracebacks are recorded."""
    raise RuntimeError(message)
