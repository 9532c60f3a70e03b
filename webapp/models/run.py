"""Runs: one execution of a job, from queued to its outcome."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .clock import from_db, utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "skipped", "lost")
ACTIVE_STATUSES = ("queued", "running")
TRIGGERS = ("schedule", "manual", "misfire")


class JobRun(db.Model):
    """One run of a job; job_id is cleared, not the run, when the job is deleted."""

    __tablename__ = "job_runs"
    __table_args__ = (
        # One row per fire instant: a scheduler can never record the same instant twice.
        UniqueConstraint("job_id", "scheduled_for", name="uq_job_runs_job_instant"),
        Index("ix_job_runs_job_id_id", "job_id", "id"),
        Index("ix_job_runs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    job_name: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The job's retry and time-limit overrides when the run was queued.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    triggered_by: Mapped[str | None] = mapped_column(String(64))
    scheduled_for: Mapped[datetime | None]
    queued_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    duration_ms: Mapped[int | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(default=1)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    artifact: Mapped[str | None] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(64), index=True)

    @property
    def is_active(self) -> bool:
        """Return whether the run has not finished yet."""
        return self.status in ACTIVE_STATUSES

    @property
    def queued(self) -> datetime:
        """Return when the run was queued, UTC-aware."""
        return from_db(self.queued_at)

    @property
    def started(self) -> datetime | None:
        """Return when the run started, UTC-aware."""
        return from_db(self.started_at)

    @property
    def finished(self) -> datetime | None:
        """Return when the run finished, UTC-aware."""
        return from_db(self.finished_at)
