"""Read-side queries for the pages: filtered, paged lists of jobs, runs and audit events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import ACTIVE_STATUSES, AuditEvent, Job, JobRun

JOB_STATES = ("active", "paused", "running", "failing")


@dataclass
class JobFilters:
    """What the jobs page is filtered by."""

    q: str = ""
    task: str = ""
    queue: str = ""
    state: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args) -> JobFilters:
        """Read the filters from query-string arguments, ignoring bad values."""
        state = args.get("state", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            task=args.get("task", "")[:64],
            queue=args.get("queue", "")[:16],
            state=state if state in JOB_STATES else "",
            page=page_arg(args),
        )

    def as_args(self, **overrides: Any) -> dict[str, Any]:
        """Return the non-empty filters as query-string arguments."""
        values = {"q": self.q, "task": self.task, "queue": self.queue, "state": self.state,
                  "page": self.page if self.page > 1 else ""}
        values.update(overrides)
        return {k: v for k, v in values.items() if v not in ("", None)}


def contains(column, text: str):
    """Return a case-insensitive 'column contains text' condition, with % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if db.engine.dialect.name == "sqlite":
        # SQLite's LIKE already ignores ASCII case, and its lower() knows no other: ilike's
        # lower(column) LIKE lower(?) matches the same rows at twice the cost of a full scan.
        return column.like(f"%{escaped}%", escape="\\")
    return column.ilike(f"%{escaped}%", escape="\\")


def page_arg(args) -> int:
    """Return the page number from the arguments, at least 1."""
    try:
        return max(int(args.get("page", 1)), 1)
    except (TypeError, ValueError):
        return 1


def _running(job_id_column):
    """Return a condition: the job has a queued or running run."""
    return exists().where(JobRun.job_id == job_id_column, JobRun.status.in_(ACTIVE_STATUSES))


def list_jobs(filters: JobFilters, per_page: int):
    """Return a page of jobs matching the filters, by name, with their last run loaded."""
    query = select(Job).options(joinedload(Job.last_run)).order_by(Job.name)
    if filters.q:
        query = query.where(contains(Job.name, filters.q))
    if filters.task:
        query = query.where(Job.task == filters.task)
    if filters.queue:
        query = query.where(Job.queue == filters.queue)
    if filters.state == "active":
        query = query.where(Job.paused.is_(False))
    elif filters.state == "paused":
        query = query.where(Job.paused.is_(True))
    elif filters.state == "running":
        query = query.where(_running(Job.id))
    elif filters.state == "failing":
        query = query.join(JobRun, JobRun.id == Job.last_run_id).where(
            JobRun.status.in_(("failed", "lost"))
        )
    return db.paginate(query, page=filters.page, per_page=per_page, error_out=False)


def running_job_ids(job_ids: list[int]) -> set[int]:
    """Return which of these jobs have a run queued or running."""
    if not job_ids:
        return set()
    rows = db.session.scalars(
        select(JobRun.job_id).where(JobRun.job_id.in_(job_ids), JobRun.status.in_(ACTIVE_STATUSES))
    )
    return set(rows)


def list_runs(*, status: str = "", job_id: int | None = None, page: int = 1, per_page: int = 25):
    """Return a page of runs, newest first, optionally of one job and one status."""
    query = select(JobRun).order_by(JobRun.id.desc())
    if job_id is not None:
        query = query.where(JobRun.job_id == job_id)
    if status:
        query = query.where(JobRun.status == status)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def list_audit(*, q: str = "", page: int = 1, per_page: int = 50):
    """Return a page of audit events, newest first, optionally matching a name or user."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if q:
        query = query.where(or_(contains(AuditEvent.target_name, q), contains(AuditEvent.username, q)))
    return db.paginate(query, page=page, per_page=per_page, error_out=False)
