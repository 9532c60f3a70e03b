"""Report: build files from the platform's own data."""

import csv
from datetime import timedelta

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import JobRun
from webapp.models.clock import utcnow

from .registry import Param, task_type

COLUMNS = ("id", "job_name", "task", "queue", "status", "trigger", "queued_at",
           "started_at", "finished_at", "duration_ms", "attempt", "worker", "error")


@task_type(
    "report.runs_csv",
    queue="report",
    title="Runs report (CSV)",
    params=[
        Param("days", "int", label="Period (days)", default=7, min=1, max=3660),
        Param("status", "choice", label="Only status", default="any",
              choices=("any", "succeeded", "failed", "skipped", "lost")),
    ],
)
def runs_csv(run, days=7, status="any"):
    """Write a CSV of the runs over the last N days, downloadable from this run."""
    since = utcnow() - timedelta(days=days)
    query = select(JobRun).where(JobRun.queued_at >= since, JobRun.id != run.run_id)
    if status != "any":
        query = query.where(JobRun.status == status)
    path = run.artifact_path(f"runs-{days}d.csv")
    counts: dict[str, int] = {}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in db.session.scalars(query.order_by(JobRun.id).execution_options(yield_per=500)):
            counts[row.status] = counts.get(row.status, 0) + 1
            writer.writerow([getattr(row, column) for column in COLUMNS])
    return {"rows": sum(counts.values()), "by_status": counts, "days": days, "artifact": str(path)}
