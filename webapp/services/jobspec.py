"""Turn submitted job fields (a form or JSON) into checked values, or say what is wrong.

The form view and a future JSON API share this one validator, so a rule is written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from tasks import registry

from ..models import MISFIRE_POLICIES, Job
from ..models.clock import from_db
from ..schedules import Schedule, ScheduleError, zone

NAME_MAX = 100
DESCRIPTION_MAX = 2000
MAX_CONCURRENT = 100
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
PARAM_PREFIX = "param."


class JobErrors(ValueError):
    """Submitted job fields that cannot be saved, by field name."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class JobSpec:
    """Checked values of a job, ready to be stored."""

    name: str
    task: str
    queue: str
    schedule: Schedule
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    misfire_policy: str = "run_once"
    max_concurrent: int = 1
    paused: bool = False
    limits: dict[str, int] = field(default_factory=dict)


LIMIT_FIELDS = {
    # field: (lowest, highest, message)
    "max_retries": (0, 20, "A whole number of retries from 0 to 20."),
    "soft_time_limit": (1, 7 * 86400, "A whole number of seconds from 1 to 604800."),
    "time_limit": (1, 7 * 86400, "A whole number of seconds from 1 to 604800."),
}


def parse_limits(data: Mapping[str, Any], errors: dict[str, str]) -> dict[str, int]:
    """Return the optional retry and time-limit overrides; blank means the task's default."""
    limits: dict[str, int] = {}
    for name, (low, high, message) in LIMIT_FIELDS.items():
        raw = _text(data, name)
        if not raw:
            continue
        try:
            value = int(raw)
            if not low <= value <= high:
                raise ValueError
        except ValueError:
            errors[name] = message
            continue
        limits[name] = value
    if "soft_time_limit" in limits and "time_limit" in limits \
            and limits["time_limit"] <= limits["soft_time_limit"]:
        errors["time_limit"] = "The hard limit must be longer than the soft limit."
    return limits


def _text(data: Mapping[str, Any], key: str) -> str:
    """Return a submitted value as stripped text."""
    value = data.get(key)
    return "" if value is None else str(value).strip()


def _local_time(data: Mapping[str, Any], key: str, tz: str) -> datetime | None:
    """Return a 'YYYY-MM-DDTHH:MM' field read as wall-clock time in the zone, as UTC."""
    raw = _text(data, key)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ScheduleError(key, "Give a date and time as YYYY-MM-DD HH:MM.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz))
    return moment


def submitted_params(data: Mapping[str, Any], task: registry.TaskType) -> dict[str, Any]:
    """Return the task parameters from a 'params' object (JSON) or 'param.<name>' form fields.

    A JSON object is taken whole, so an unknown key is an error. Form fields of parameters the
    task does not declare are dropped: they are left over from another task type chosen first.
    """
    if isinstance(data.get("params"), Mapping):
        return dict(data["params"])
    declared = {p.name for p in task.params}
    fields = {k[len(PARAM_PREFIX):]: v for k, v in data.items() if k.startswith(PARAM_PREFIX)}
    return {k: v for k, v in fields.items() if k in declared}


def _same_minute(a: datetime, b: datetime | None) -> bool:
    """Return whether two instants fall in the same minute (the form's precision)."""
    return b is not None and abs((a - b).total_seconds()) < 60 and a.minute == b.astimezone(a.tzinfo).minute


def parse_schedule(data: Mapping[str, Any], *, now: datetime, anchor: datetime,
                   kept_run_at: datetime | None = None) -> Schedule:
    """Return the schedule described by the fields, or raise ScheduleError for one field."""
    kind = _text(data, "schedule_kind") or "interval"
    tz = _text(data, "timezone") or "UTC"
    zone(tz)
    values: dict[str, Any] = {"kind": kind, "timezone": tz}
    if kind == "interval":
        unit = _text(data, "every_unit") or "minutes"
        if unit not in UNITS:
            raise ScheduleError("every_unit", "Choose seconds, minutes, hours or days.")
        try:
            amount = float(_text(data, "every"))
        except ValueError:
            raise ScheduleError("every", "Give the interval as a number.") from None
        if not math.isfinite(amount):
            raise ScheduleError("every", "Give the interval as a number.")
        seconds = amount * UNITS[unit]
        if seconds <= 0:
            raise ScheduleError("every", "The interval must be greater than zero.")
        if seconds != int(seconds):
            raise ScheduleError("every", "The interval must be a whole number of seconds.")
        values["every_seconds"] = int(seconds)
        values["anchor"] = anchor
    elif kind == "cron":
        values["cron"] = _text(data, "cron")
    elif kind == "once":
        run_at = _local_time(data, "run_at", tz)
        if run_at is None:
            raise ScheduleError("run_at", "Give the date and time of the one-off run.")
        if run_at <= now and not _same_minute(run_at, kept_run_at):  # unchanged: may be edited
            raise ScheduleError("run_at", "This time has already passed.")
        values["run_at"] = run_at
    else:
        raise ScheduleError("schedule_kind", "Choose interval, cron or once.")
    values["start_at"] = _local_time(data, "start_at", tz)
    values["end_at"] = _local_time(data, "end_at", tz)
    return Schedule(**values)


def parse(data: Mapping[str, Any], *, now: datetime, existing: Job | None = None) -> JobSpec:
    """Return a JobSpec for the submitted fields, or raise JobErrors naming every bad field."""
    errors: dict[str, str] = {}
    name = _text(data, "name")
    if not name:
        errors["name"] = "Give the job a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"At most {NAME_MAX} characters."
    description = _text(data, "description")
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = f"At most {DESCRIPTION_MAX} characters."

    task = registry.get(_text(data, "task"))
    params: dict[str, Any] = {}
    if task is None:
        errors["task"] = "Choose a task type from the list."
    else:
        try:
            params = task.validate_params(submitted_params(data, task))
        except registry.ParamErrors as exc:
            errors.update({f"{PARAM_PREFIX}{k}": v for k, v in exc.errors.items()})

    queue = _text(data, "queue") or (task.queue if task else "")
    if queue not in registry.QUEUES:
        errors["queue"] = f"Choose one of: {', '.join(registry.QUEUES)}."

    misfire = _text(data, "misfire_policy") or "run_once"
    if misfire not in MISFIRE_POLICIES:
        errors["misfire_policy"] = "Choose 'run once' or 'skip'."
    try:
        max_concurrent = int(_text(data, "max_concurrent") or 1)
        if not 1 <= max_concurrent <= MAX_CONCURRENT:
            raise ValueError
    except ValueError:
        errors["max_concurrent"] = f"A whole number from 1 to {MAX_CONCURRENT}."
        max_concurrent = 1

    limits = parse_limits(data, errors)
    schedule = None
    anchor = now
    if existing is not None and existing.anchor_at is not None:
        anchor = from_db(existing.anchor_at)
    try:
        zone(_text(data, "timezone") or "UTC")
    except ScheduleError as exc:
        # Report the zone, and still check the rest of the schedule as if it were UTC.
        errors[exc.field] = exc.message
        data = {**data, "timezone": "UTC"}
    try:
        kept = from_db(existing.run_at) if existing is not None else None
        schedule = parse_schedule(data, now=now, anchor=anchor, kept_run_at=kept)
    except ScheduleError as exc:
        errors.setdefault(exc.field, exc.message)
    if errors:
        raise JobErrors(errors)
    return JobSpec(
        name=name,
        task=task.name,
        queue=queue,
        schedule=schedule,
        params=params,
        description=description,
        misfire_policy=misfire,
        max_concurrent=max_concurrent,
        paused=not _enabled(data),
        limits=limits,
    )


def _enabled(data: Mapping[str, Any]) -> bool:
    """Return the 'enabled' checkbox: present and truthy in a form, or a JSON boolean."""
    value = data.get("enabled")
    if isinstance(value, bool):
        return value
    return _text(data, "enabled").lower() in {"1", "true", "on", "yes", "y"}


def form_values(job: Job) -> dict[str, Any]:
    """Return a job's fields as the raw values the form shows."""
    schedule = job.schedule
    tz = zone(schedule.timezone)

    def local(value):
        return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""

    every, unit = "", "minutes"
    if schedule.every_seconds:
        for unit in ("days", "hours", "minutes", "seconds"):
            if schedule.every_seconds % UNITS[unit] == 0:
                every = str(schedule.every_seconds // UNITS[unit])
                break
    values = {
        "name": job.name,
        "description": job.description or "",
        "task": job.task,
        "queue": job.queue,
        "schedule_kind": schedule.kind,
        "every": every,
        "every_unit": unit,
        "cron": schedule.cron or "",
        "run_at": local(schedule.run_at),
        "timezone": schedule.timezone,
        "start_at": local(schedule.start_at),
        "end_at": local(schedule.end_at),
        "misfire_policy": job.misfire_policy,
        "max_concurrent": str(job.max_concurrent),
        "enabled": "" if job.paused else "on",
    }
    for key, value in (job.limits or {}).items():
        values[key] = str(value)
    for key, value in (job.params or {}).items():
        values[f"{PARAM_PREFIX}{key}"] = value
    return values
