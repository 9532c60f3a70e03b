"""Mark runs lost that nothing will ever finish (Celery mode; the beat runs this)."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import and_, or_, select

from tasks import runs
from tasks.celery_app import run_options

from ..extensions import db
from ..models import JobRun
from ..models.clock import utcnow

# Slack beyond a run's hard time limit before it counts as lost.
MARGIN = timedelta(seconds=60)


def reap_lost_runs() -> int:
    """Mark lost the runs running past their hard time limit, or queued past the visibility timeout.

    A worker killed mid-run has its task delivered again (late acknowledgement), and the next
    worker takes the run over; this catches the rest: a worker lost with its message, a broker
    restarted empty.
    """
    now = utcnow()
    visibility = timedelta(seconds=int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(4 * 3600))))
    running = db.session.scalars(select(JobRun).where(JobRun.status == "running")).all()
    overdue = [run.id for run in running
               if run.started_at and run.started_at + timedelta(seconds=run_options(run)["time_limit"]) + MARGIN < now]
    lost = 0
    if overdue:
        lost += runs.mark_lost(JobRun.id.in_(overdue),
                               "No worker finished it within its time limit (worker lost).")
    stale_queue = and_(JobRun.status == "queued", JobRun.queued_at < now - visibility - MARGIN)
    if db.session.scalar(select(JobRun.id).where(stale_queue).limit(1)) is not None:
        lost += runs.mark_lost(or_(stale_queue), "No worker picked it up (message lost).")
    return lost
