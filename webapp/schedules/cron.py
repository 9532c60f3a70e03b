"""Validate, evaluate and describe standard 5-field cron expressions (Vixie cron rules)."""

from datetime import datetime, timezone
from functools import lru_cache

from cronsim import CronSim, CronSimError

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
ALLOWED = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday)",
}
# cronsim names the failing field in its message ("Bad minute"); map its words to ours.
_CRONSIM_WORDS = {"minute": 0, "hour": 1, "day-of-month": 2, "month": 3, "day-of-week": 4}


class CronError(ValueError):
    """A cron expression that is not valid, with a message naming the wrong field."""


def normalize(expression: str) -> str:
    """Return the expression with single spaces, or raise CronError naming the wrong field."""
    parts = (expression or "").split()
    if len(parts) != 5:
        raise CronError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week); "
            f"this one has {len(parts)}."
        )
    text = " ".join(parts)
    _parse(text)
    return text


@lru_cache(maxsize=4096)
def _parse(text: str) -> None:
    """Check the expression once; cache it, since the beat asks again on every fire."""
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise CronError(_explain_error(text, str(exc))) from None


def _explain_error(text: str, message: str) -> str:
    """Turn cronsim's terse message into one that says which field is wrong and why."""
    lowered = message.lower().replace("day of month", "day-of-month").replace(
        "day of week", "day-of-week"
    )
    for word, index in sorted(_CRONSIM_WORDS.items(), key=lambda kv: -len(kv[0])):
        if word in lowered or (word == "day-of-week" and "weekday" in lowered):
            field = FIELDS[index]
            value = text.split()[index]
            if field == "day-of-month" and _in_range(value, 31):
                month = text.split()[3]
                return f"The day-of-month '{value}' never occurs in month '{month}'."
            return f"The {field} field '{value}' is not valid (allowed: {ALLOWED[field]})."
    return f"The cron expression is not valid: {message}."


def _in_range(value: str, highest: int) -> bool:
    """Return whether a plain list of numbers stays within 1..highest."""
    parts = value.replace("-", ",").split(",")
    return all(p.isdigit() and 1 <= int(p) <= highest for p in parts)


def next_after(text: str, after_local: datetime) -> datetime:
    """Return the first fire time strictly after the given zone-aware local time.

    cronsim works on wall-clock time and does not know which pass of a repeated hour (DST
    fall-back) `after_local` is in, so it can answer a time of the first pass when we are in
    the second. Skip such answers by comparing real instants; Python ignores the fold when
    both datetimes share a zone, hence the comparison in UTC.
    """
    after_utc = after_local.astimezone(timezone.utc)
    for candidate in CronSim(text, after_local):
        if candidate.astimezone(timezone.utc) > after_utc:
            return candidate
    raise CronError(f"'{text}' never fires")


def describe(text: str) -> str:
    """Return the expression in words, such as 'At 09:00 on Monday through Friday'."""
    try:
        return CronSim(text, datetime(2000, 1, 1)).explain()
    except Exception:  # explain() does not cover every form; the expression itself is still valid
        return f"cron '{text}'"
