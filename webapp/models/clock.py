"""The one clock of the models: naive UTC, as SQLite stores it."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Return the current time in UTC, without tzinfo (the database convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_db(value: datetime | None) -> datetime | None:
    """Return an aware datetime as naive UTC for storage."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def from_db(value: datetime | None) -> datetime | None:
    """Return a stored naive UTC datetime as UTC-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
