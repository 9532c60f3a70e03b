"""Jobs: a task type with parameters, a schedule, and how to run it."""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from ..extensions import db
from ..schedules import Schedule
from .clock import from_db, to_db, utcnow

if TYPE_CHECKING:
    from .run import JobRun

MISFIRE_POLICIES = ("run_once", "skip")


class Job(db.Model):
    """A scheduled job; the database row is the source of truth for both backends."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The name case-folded (Unicode-aware, unlike SQL lower()), so 'Ärger' and 'ÄRGER' clash.
    name_key: Mapped[str] = mapped_column(String(400), unique=True)
    task: Mapped[str] = mapped_column(String(64), index=True)
    queue: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    schedule_kind: Mapped[str] = mapped_column(String(16))
    every_seconds: Mapped[int | None]
    cron: Mapped[str | None] = mapped_column(String(120))
    run_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    anchor_at: Mapped[datetime | None]

    # Per-job overrides of the task type's max_retries, soft_time_limit, time_limit (Celery).
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    misfire_policy: Mapped[str] = mapped_column(String(16), default="run_once")
    max_concurrent: Mapped[int] = mapped_column(default=1)
    paused: Mapped[bool] = mapped_column(default=False, index=True)
    # Maintained by the scheduler after every fire, so every process can show it.
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("job_runs.id", ondelete="SET NULL", use_alter=True)
    )
    # Bumped on every change; a backend rebuilds a job only when its revision moved.
    revision: Mapped[int] = mapped_column(default=1)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))

    last_run: Mapped["JobRun | None"] = relationship(foreign_keys=[last_run_id])

    @validates("name")
    def _keep_name_key(self, _key: str, name: str) -> str:
        """Keep name_key in step with the name."""
        self.name_key = name.casefold()
        return name

    @property
    def schedule(self) -> Schedule:
        """Return the job's schedule as a value object."""
        return Schedule(
            kind=self.schedule_kind,
            timezone=self.timezone,
            every_seconds=self.every_seconds,
            cron=self.cron,
            run_at=from_db(self.run_at),
            start_at=from_db(self.start_at),
            end_at=from_db(self.end_at),
            anchor=from_db(self.anchor_at),
        )

    @schedule.setter
    def schedule(self, value: Schedule) -> None:
        self.schedule_kind = value.kind
        self.timezone = value.timezone
        self.every_seconds = value.every_seconds
        self.cron = value.cron
        self.run_at = to_db(value.run_at)
        self.start_at = to_db(value.start_at)
        self.end_at = to_db(value.end_at)
        self.anchor_at = to_db(value.anchor)

    @property
    def next_run(self) -> datetime | None:
        """Return the next fire time as UTC-aware, or None when paused or finished."""
        return from_db(self.next_run_at)
