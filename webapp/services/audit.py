"""Record who changed what in the audit log."""

from typing import Any

from ..extensions import db
from ..models import AuditEvent


def record(
    username: str,
    action: str,
    target_type: str,
    target_id: int | None = None,
    target_name: str = "",
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the current transaction (the caller commits)."""
    event = AuditEvent(
        username=username,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name[:100],
        detail=detail,
    )
    db.session.add(event)
    return event
