"""What the scheduler processes publish about themselves, for every web process to show."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .clock import utcnow


class ScheduleRevision(db.Model):
    """A counter bumped with every job change, so schedulers notice changes cheaply."""

    __tablename__ = "schedule_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class SchedulerHeartbeat(db.Model):
    """The latest state reported by the process that holds the scheduler lock."""

    __tablename__ = "scheduler_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
