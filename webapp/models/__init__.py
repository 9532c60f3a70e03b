"""Flask-SQLAlchemy models: jobs, their runs, users and the audit log."""

from .audit import AuditEvent
from .job import MISFIRE_POLICIES, Job
from .run import ACTIVE_STATUSES, STATUSES, TRIGGERS, JobRun
from .scheduler_state import ScheduleRevision, SchedulerHeartbeat
from .user import ROLES, User

__all__ = [
    "ACTIVE_STATUSES",
    "AuditEvent",
    "Job",
    "JobRun",
    "MISFIRE_POLICIES",
    "ROLES",
    "STATUSES",
    "ScheduleRevision",
    "SchedulerHeartbeat",
    "TRIGGERS",
    "User",
]
