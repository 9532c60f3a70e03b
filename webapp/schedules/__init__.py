"""Schedule value types shared by both scheduler backends: validation, fire times, words.

One piece of code decides when a job fires, so the embedded APScheduler backend and the
Celery beat fire a job at exactly the same instants. Times are UTC-aware datetimes in and out;
wall-clock rules (cron, one-off dates) are evaluated in the schedule's IANA time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from . import cron

UTC = timezone.utc
KINDS = ("interval", "cron", "once")
MAX_INTERVAL_SECONDS = 366 * 86400
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


class ScheduleError(ValueError):
    """A schedule that cannot be used, with the form field it concerns."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    """Return every IANA time zone name, sorted."""
    return sorted(available_timezones())


def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for a name, or raise ScheduleError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError("timezone", f"Unknown time zone '{name}'.") from None


def utc(value: datetime | None) -> datetime | None:
    """Return a datetime as UTC-aware; naive values are taken as UTC (as stored in SQLite)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """When a job fires: every N seconds, on a cron rule, or once; optionally within a window."""

    kind: str
    timezone: str = "UTC"
    every_seconds: int | None = None
    cron: str | None = None
    run_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    # Where interval counting starts when no start_at is given (the moment it was saved).
    anchor: datetime | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("run_at", "start_at", "end_at", "anchor"):
            object.__setattr__(self, name, utc(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ScheduleError if the schedule cannot fire as written."""
        if self.kind not in KINDS:
            raise ScheduleError("kind", f"Unknown schedule kind '{self.kind}'.")
        zone(self.timezone)
        if self.kind == "interval":
            if self.every_seconds is None or self.every_seconds <= 0:
                raise ScheduleError("every", "The interval must be a positive number.")
            if self.every_seconds > MAX_INTERVAL_SECONDS:
                raise ScheduleError("every", "The interval must be at most 366 days.")
        elif self.kind == "cron":
            try:
                object.__setattr__(self, "cron", cron.normalize(self.cron or ""))
            except cron.CronError as exc:
                raise ScheduleError("cron", str(exc)) from None
        elif self.run_at is None:
            raise ScheduleError("run_at", "Give the date and time of the one-off run.")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ScheduleError("end_at", "The end must be after the start.")

    def with_anchor(self, anchor: datetime) -> Schedule:
        """Return a copy that counts intervals from the given moment."""
        return replace(self, anchor=anchor)

    def next_after(self, after: datetime) -> datetime | None:
        """Return the first fire time strictly after `after` (UTC), or None if there is none."""
        after = utc(after)
        if self.start_at and after < self.start_at:
            # Fire times start at start_at itself: look from just before it.
            after = self.start_at - timedelta(microseconds=1)
        if self.kind == "interval":
            candidate = self._interval_after(after)
        elif self.kind == "cron":
            local = after.astimezone(zone(self.timezone))
            candidate = cron.next_after(self.cron, local).astimezone(UTC)
        else:
            candidate = self.run_at if self.run_at > after else None
        if candidate is not None and self.end_at is not None and candidate > self.end_at:
            return None
        return candidate

    def _interval_after(self, after: datetime) -> datetime:
        """Return the next tick of start_at (or anchor) + k * every strictly after `after`."""
        step = timedelta(seconds=self.every_seconds)
        first = self.start_at or ((self.anchor or after) + step)
        if after < first:
            return first
        ticks = (after - first) // step + 1
        return first + ticks * step

    def next_times(self, after: datetime, count: int = 5) -> list[datetime]:
        """Return up to `count` fire times after `after`, strictly increasing."""
        times: list[datetime] = []
        moment = after
        while len(times) < count:
            nxt = self.next_after(moment)
            if nxt is None:
                break
            times.append(nxt)
            moment = nxt
        return times

    def describe(self) -> str:
        """Return the schedule in words, such as 'every 15 minutes'."""
        if self.kind == "interval":
            text = describe_interval(self.every_seconds)
        elif self.kind == "cron":
            text = cron.describe(self.cron)
            text = text[0].lower() + text[1:] if text else text
            text = f"{text} ({self.timezone})"
        else:
            local = self.run_at.astimezone(zone(self.timezone))
            text = f"once, at {local:%Y-%m-%d %H:%M} ({self.timezone})"
        return text

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (ISO times), the form kept in Redis and in exports."""
        data = {"kind": self.kind, "timezone": self.timezone}
        for name in ("every_seconds", "cron"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        for name in ("run_at", "start_at", "end_at", "anchor"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name).isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Schedule:
        """Build a schedule from the dict made by to_dict."""
        times = {
            name: datetime.fromisoformat(data[name])
            for name in ("run_at", "start_at", "end_at", "anchor")
            if data.get(name)
        }
        return cls(
            kind=data["kind"],
            timezone=data.get("timezone", "UTC"),
            every_seconds=data.get("every_seconds"),
            cron=data.get("cron"),
            **times,
        )


def describe_interval(seconds: int) -> str:
    """Return an interval in words, in the largest unit that divides it exactly."""
    for unit, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"
