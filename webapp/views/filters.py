"""Jinja filters for times, durations and statuses."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask

from ..models.clock import from_db
from ..schedules import zone


def when(value: datetime | None, tz: str = "UTC") -> str:
    """Return a time as 'YYYY-MM-DD HH:MM:SS' in the given zone, or a dash."""
    if value is None:
        return "—"
    local = from_db(value).astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S")


def relative(value: datetime | None) -> str:
    """Return a time relative to now, such as 'in 4 min' or '2 h ago'."""
    if value is None:
        return ""
    seconds = (from_db(value) - datetime.now(timezone.utc)).total_seconds()
    future, seconds = seconds >= 0, abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size or unit == "s":
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return ""


def duration(ms: int | None) -> str:
    """Return milliseconds as '850 ms', '12.4 s' or '3 min 05 s'."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def task_title(name: str) -> str:
    """Return the title of a task type, or its name if it is not registered."""
    from tasks import registry

    task = registry.get(name)
    return task.title if task else name


def epoch(value: float | None) -> datetime | None:
    """Return epoch seconds as a UTC datetime."""
    return datetime.fromtimestamp(value, timezone.utc) if value else None


def register(app: Flask) -> None:
    """Add the filters to the app's Jinja environment."""
    app.add_template_global(task_title)
    app.add_template_filter(when)
    app.add_template_filter(relative)
    app.add_template_filter(duration)
    app.add_template_filter(epoch)
