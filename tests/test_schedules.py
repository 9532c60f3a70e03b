"""Unit tests of webapp.schedules: validation, fire times (including DST), words and round trips.

Every fire time is computed from an explicit `after` instant: no clock, no sleeps, no mocks.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

from webapp.schedules import (
    MAX_INTERVAL_SECONDS,
    Schedule,
    ScheduleError,
    describe_interval,
    utc,
    zone,
)

UTC = timezone.utc
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def at(*args) -> datetime:
    """Return a UTC-aware datetime."""
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args, fold: int = 0) -> datetime:
    """Return the UTC instant of a wall-clock time in a zone (fold picks the pass of a repeated hour)."""
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def cron(expression: str, tz: str = "UTC", **kwargs) -> Schedule:
    return Schedule(kind="cron", cron=expression, timezone=tz, **kwargs)


def every(seconds: int, **kwargs) -> Schedule:
    return Schedule(kind="interval", every_seconds=seconds, **kwargs)


def local_day_bounds(tz: str, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """Return the UTC instants of local midnight that day and local midnight the next day."""
    start = local(tz, year, month, day)
    following = datetime(year, month, day) + timedelta(days=1)
    end = local(tz, following.year, following.month, following.day)
    return start, end


def fires_on_local_day(schedule: Schedule, tz: str, year: int, month: int, day: int) -> list[datetime]:
    """Return every fire time of a schedule within one local calendar day (UTC values)."""
    start, end = local_day_bounds(tz, year, month, day)
    times = schedule.next_times(start - timedelta(microseconds=1), 200)
    return [t for t in times if start <= t < end]


def assert_strictly_increasing(values: list[datetime]) -> None:
    for earlier, later in zip(values, values[1:]):
        assert earlier < later, f"{later.isoformat()} does not come after {earlier.isoformat()}"


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------------------------
# utc() helper and naive datetimes
# --------------------------------------------------------------------------------------------


def test_utc_treats_naive_datetime_as_utc():
    assert utc(datetime(2026, 5, 1, 12, 0)) == at(2026, 5, 1, 12, 0)
    assert utc(datetime(2026, 5, 1, 12, 0)).tzinfo is UTC


def test_utc_converts_aware_datetime_to_utc():
    berlin_noon = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo(BERLIN))
    converted = utc(berlin_noon)
    assert converted == at(2026, 7, 1, 10, 0)
    assert converted.tzinfo is UTC
    assert (converted.hour, converted.minute) == (10, 0)


def test_utc_passes_none_through():
    assert utc(None) is None


def test_next_after_accepts_naive_datetime_as_utc_for_cron():
    schedule = cron("0 9 * * *")
    assert schedule.next_after(datetime(2026, 5, 1, 8, 0)) == at(2026, 5, 1, 9, 0)
    assert schedule.next_after(datetime(2026, 5, 1, 8, 0)) == schedule.next_after(at(2026, 5, 1, 8, 0))


def test_next_after_accepts_naive_datetime_as_utc_for_interval_and_once():
    interval = every(900, anchor=at(2026, 5, 1, 10, 0))
    assert interval.next_after(datetime(2026, 5, 1, 10, 7)) == at(2026, 5, 1, 10, 15)
    once = Schedule(kind="once", run_at=at(2026, 5, 1, 12, 0))
    assert once.next_after(datetime(2026, 5, 1, 11, 0)) == at(2026, 5, 1, 12, 0)
    assert once.next_after(datetime(2026, 5, 1, 13, 0)) is None


def test_naive_schedule_times_are_stored_as_utc():
    schedule = Schedule(
        kind="once",
        run_at=datetime(2026, 5, 1, 12, 0),
        start_at=datetime(2026, 4, 1),
        end_at=datetime(2026, 6, 1),
    )
    assert schedule.run_at == at(2026, 5, 1, 12, 0)
    assert schedule.start_at.tzinfo is not None and schedule.end_at.tzinfo is not None


def test_fire_times_are_returned_in_utc():
    assert_utc(cron("0 9 * * *", BERLIN).next_after(at(2026, 5, 1)))
    assert_utc(every(60, anchor=at(2026, 5, 1)).next_after(at(2026, 5, 1)))
    aware_berlin = datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo(BERLIN))
    assert_utc(Schedule(kind="once", run_at=aware_berlin).next_after(at(2026, 5, 1)))


# --------------------------------------------------------------------------------------------
# Interval schedules
# --------------------------------------------------------------------------------------------


def test_interval_first_fire_is_anchor_plus_every_without_start_at():
    schedule = every(900, anchor=at(2026, 5, 1, 10, 0))
    assert schedule.next_after(at(2026, 5, 1, 10, 0)) == at(2026, 5, 1, 10, 15)
    # Asked from before the anchor, the first fire is still anchor + every.
    assert schedule.next_after(at(2026, 4, 1)) == at(2026, 5, 1, 10, 15)


def test_interval_first_fire_is_start_at_itself_when_given():
    schedule = every(900, start_at=at(2026, 5, 1, 10, 0))
    assert schedule.next_after(at(2026, 5, 1, 9, 0)) == at(2026, 5, 1, 10, 0)
    assert schedule.next_after(at(2026, 5, 1, 10, 0) - timedelta(microseconds=1)) == at(2026, 5, 1, 10, 0)


def test_interval_start_at_takes_precedence_over_anchor():
    schedule = every(900, start_at=at(2026, 5, 1, 10, 5), anchor=at(2026, 5, 1, 10, 0))
    assert schedule.next_after(at(2026, 5, 1, 9, 0)) == at(2026, 5, 1, 10, 5)
    assert schedule.next_after(at(2026, 5, 1, 10, 7)) == at(2026, 5, 1, 10, 20)


def test_interval_next_after_is_strictly_after():
    schedule = every(900, anchor=at(2026, 5, 1, 10, 0))
    assert schedule.next_after(at(2026, 5, 1, 10, 15)) == at(2026, 5, 1, 10, 30)
    started = every(900, start_at=at(2026, 5, 1, 10, 0))
    assert started.next_after(at(2026, 5, 1, 10, 0)) == at(2026, 5, 1, 10, 15)


def test_interval_fire_times_stay_on_anchor_grid():
    schedule = every(900, anchor=at(2026, 5, 1, 10, 0, 0))
    assert schedule.next_after(at(2026, 5, 1, 10, 7)) == at(2026, 5, 1, 10, 15)
    assert schedule.next_after(at(2026, 5, 1, 10, 29, 59, 999999)) == at(2026, 5, 1, 10, 30)
    assert schedule.next_after(at(2026, 5, 3, 17, 44, 1)) == at(2026, 5, 3, 17, 45)


def test_interval_grid_keeps_anchor_seconds():
    schedule = every(60, anchor=at(2026, 5, 1, 10, 0, 17))
    assert schedule.next_after(at(2026, 5, 1, 12, 0, 0)) == at(2026, 5, 1, 12, 0, 17)
    assert schedule.next_after(at(2026, 5, 1, 12, 0, 17)) == at(2026, 5, 1, 12, 1, 17)


def test_interval_next_times_are_evenly_spaced_on_the_grid():
    schedule = every(900, anchor=at(2026, 5, 1, 10, 0))
    times = schedule.next_times(at(2026, 5, 1, 10, 7), 5)
    assert times == [at(2026, 5, 1, 10, 15) + k * timedelta(minutes=15) for k in range(5)]


def test_interval_without_anchor_or_start_counts_from_after():
    schedule = every(60)
    assert schedule.next_after(at(2026, 5, 1, 10, 0, 30)) == at(2026, 5, 1, 10, 1, 30)


def test_interval_end_at_stops_the_schedule():
    schedule = every(900, anchor=at(2026, 5, 1, 10, 0), end_at=at(2026, 5, 1, 11, 0))
    assert schedule.next_after(at(2026, 5, 1, 10, 50)) == at(2026, 5, 1, 11, 0)  # end_at itself fires
    assert schedule.next_after(at(2026, 5, 1, 11, 0)) is None
    assert schedule.next_after(at(2026, 6, 1)) is None
    assert schedule.next_times(at(2026, 5, 1, 10, 0), 50) == [
        at(2026, 5, 1, 10, 15),
        at(2026, 5, 1, 10, 30),
        at(2026, 5, 1, 10, 45),
        at(2026, 5, 1, 11, 0),
    ]


def test_interval_counts_real_time_across_fall_back():
    schedule = every(3600, anchor=local(BERLIN, 2026, 1, 1, 0, 0))
    assert len(fires_on_local_day(schedule, BERLIN, 2026, 10, 25)) == 25
    assert len(fires_on_local_day(schedule, BERLIN, 2026, 3, 29)) == 23


@pytest.mark.parametrize("seconds", [0, -1, -900])
def test_interval_zero_or_negative_raises_on_every(seconds):
    with pytest.raises(ScheduleError) as excinfo:
        every(seconds)
    assert excinfo.value.field == "every"


def test_interval_missing_every_raises_on_every():
    with pytest.raises(ScheduleError) as excinfo:
        Schedule(kind="interval")
    assert excinfo.value.field == "every"


def test_interval_over_366_days_raises_on_every():
    with pytest.raises(ScheduleError) as excinfo:
        every(366 * 86400 + 1)
    assert excinfo.value.field == "every"
    assert "366" in excinfo.value.message


def test_interval_of_exactly_366_days_is_allowed():
    assert every(MAX_INTERVAL_SECONDS).every_seconds == 366 * 86400


def test_schedule_error_is_a_value_error_with_message():
    with pytest.raises(ValueError) as excinfo:
        every(0)
    assert str(excinfo.value) == excinfo.value.message


# --------------------------------------------------------------------------------------------
# Cron schedules: standard (Vixie) cron rules
# --------------------------------------------------------------------------------------------


def test_cron_weekdays_at_nine_berlin_is_eight_utc_in_winter():
    schedule = cron("0 9 * * 1-5", BERLIN)
    # 2026-01-05 is a Monday.
    assert schedule.next_after(at(2026, 1, 5, 0, 0)) == at(2026, 1, 5, 8, 0)


def test_cron_weekdays_at_nine_berlin_is_seven_utc_in_summer():
    schedule = cron("0 9 * * 1-5", BERLIN)
    # 2026-07-06 is a Monday.
    assert schedule.next_after(at(2026, 7, 6, 0, 0)) == at(2026, 7, 6, 7, 0)


def test_cron_weekdays_at_nine_berlin_follows_the_clock_change():
    schedule = cron("0 9 * * 1-5", BERLIN)
    # Friday 2026-03-27 is still winter time; Monday 2026-03-30 is summer time.
    assert schedule.next_times(at(2026, 3, 27, 0, 0), 2) == [at(2026, 3, 27, 8, 0), at(2026, 3, 30, 7, 0)]


def test_cron_weekdays_skip_the_weekend():
    times = cron("0 9 * * 1-5", BERLIN).next_times(at(2026, 1, 1), 20)
    assert len(times) == 20
    assert all(t.astimezone(ZoneInfo(BERLIN)).weekday() < 5 for t in times)
    assert all(t.astimezone(ZoneInfo(BERLIN)).hour == 9 for t in times)


def test_cron_day_of_week_zero_and_seven_are_both_sunday():
    after = at(2026, 2, 1, 12, 0)
    zero = cron("0 0 * * 0").next_times(after, 4)
    seven = cron("0 0 * * 7").next_times(after, 4)
    assert zero == seven
    assert all(t.weekday() == 6 for t in zero)
    assert zero[0] == at(2026, 2, 8, 0, 0)


def test_cron_accepts_day_and_month_names():
    schedule = cron("0 9 * JAN MON-FRI")
    times = schedule.next_times(at(2026, 1, 1), 30)
    assert len(times) == 30
    assert all(t.month == 1 and t.weekday() < 5 and t.hour == 9 for t in times)
    # After the last weekday of January 2026 (Friday the 30th) it waits for January 2027.
    assert schedule.next_after(at(2026, 1, 30, 9, 0)) == at(2027, 1, 1, 9, 0)


def test_cron_names_match_numbers():
    after = at(2026, 3, 1)
    assert cron("0 9 * JAN MON-FRI").next_times(after, 10) == cron("0 9 * 1 1-5").next_times(after, 10)
    assert cron("0 9 * * SUN").next_times(after, 5) == cron("0 9 * * 0").next_times(after, 5)


def test_cron_accepts_lower_case_names():
    after = at(2026, 3, 1)
    assert cron("0 9 * jan mon-fri").next_times(after, 10) == cron("0 9 * JAN MON-FRI").next_times(after, 10)


def test_cron_day_of_month_and_day_of_week_are_ored_when_both_restricted():
    # April 2026: Fridays are 3, 10, 17, 24; the 13th is a Monday. May 13th is a Wednesday.
    times = cron("0 0 13 * 5").next_times(at(2026, 4, 1), 9)
    assert [t.date().isoformat() for t in times] == [
        "2026-04-03",
        "2026-04-10",
        "2026-04-13",
        "2026-04-17",
        "2026-04-24",
        "2026-05-01",
        "2026-05-08",
        "2026-05-13",
        "2026-05-15",
    ]


def test_cron_day_of_month_alone_restricts_only_the_date():
    times = cron("0 0 13 * *").next_times(at(2026, 4, 1), 3)
    assert [t.date().isoformat() for t in times] == ["2026-04-13", "2026-05-13", "2026-06-13"]


def test_cron_next_after_is_strictly_after():
    schedule = cron("0 9 * * *")
    assert schedule.next_after(at(2026, 5, 1, 9, 0)) == at(2026, 5, 2, 9, 0)
    assert schedule.next_after(at(2026, 5, 1, 9, 0, 0, 1)) == at(2026, 5, 2, 9, 0)
    assert schedule.next_after(at(2026, 5, 1, 8, 59, 59, 999999)) == at(2026, 5, 1, 9, 0)


def test_cron_expression_whitespace_is_normalized():
    assert cron("  0   9 *  * 1-5 ").cron == "0 9 * * 1-5"


@pytest.mark.parametrize("expression", ["", "* * * *", "0 9 * * 1-5 2026", "* * * * * *", "@daily"])
def test_cron_wrong_field_count_raises_on_cron_mentioning_five_fields(expression):
    with pytest.raises(ScheduleError) as excinfo:
        cron(expression)
    assert excinfo.value.field == "cron"
    assert "5 fields" in excinfo.value.message


def test_cron_missing_expression_raises_on_cron():
    with pytest.raises(ScheduleError) as excinfo:
        Schedule(kind="cron")
    assert excinfo.value.field == "cron"
    assert "5 fields" in excinfo.value.message


@pytest.mark.parametrize(
    ("expression", "field", "value"),
    [
        ("61 * * * *", "minute", "61"),
        ("* 24 * * *", "hour", "24"),
        ("* * 32 * *", "day-of-month", "32"),
        ("* * * 13 *", "month", "13"),
        ("* * * * 8", "day-of-week", "8"),
        ("* * 0 * *", "day-of-month", "0"),
        ("* * * 0 *", "month", "0"),
        ("x * * * *", "minute", "x"),
        ("*/0 * * * *", "minute", "*/0"),
        ("* * * * MON-XYZ", "day-of-week", "MON-XYZ"),
    ],
)
def test_cron_bad_field_raises_message_naming_that_field(expression, field, value):
    with pytest.raises(ScheduleError) as excinfo:
        cron(expression)
    assert excinfo.value.field == "cron"
    message = excinfo.value.message
    assert f"The {field} field '{value}'" in message
    assert "allowed" in message


# --------------------------------------------------------------------------------------------
# Cron schedules across daylight-saving transitions
# --------------------------------------------------------------------------------------------

# zone, local transition date, and the local hour that is skipped (spring) or repeated (fall).
TRANSITIONS = {
    "berlin-spring": (BERLIN, (2026, 3, 29), 2),
    "berlin-fall": (BERLIN, (2026, 10, 25), 2),
    "new-york-spring": (NEW_YORK, (2026, 3, 8), 2),
    "new-york-fall": (NEW_YORK, (2026, 11, 1), 1),
}


def test_transition_dates_are_what_the_tests_assume():
    """Guard: the tz database really moves the clocks on these days (UTC offsets differ)."""
    for tz, (year, month, day), _hour in TRANSITIONS.values():
        start, end = local_day_bounds(tz, year, month, day)
        assert (end - start) in (timedelta(hours=23), timedelta(hours=25))


def test_cron_fires_once_just_after_spring_forward_gap_berlin():
    schedule = cron("30 2 * * *", BERLIN)
    fires = fires_on_local_day(schedule, BERLIN, 2026, 3, 29)
    assert fires == [at(2026, 3, 29, 1, 0)]  # 03:00 CEST, right after the jump
    assert fires[0].astimezone(ZoneInfo(BERLIN)).strftime("%H:%M") == "03:00"
    # And back to normal the next day.
    assert schedule.next_after(fires[0]) == local(BERLIN, 2026, 3, 30, 2, 30)


def test_cron_fires_once_just_after_spring_forward_gap_new_york():
    schedule = cron("30 2 * * *", NEW_YORK)
    fires = fires_on_local_day(schedule, NEW_YORK, 2026, 3, 8)
    assert fires == [at(2026, 3, 8, 7, 0)]  # 03:00 EDT
    assert fires[0].astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == "03:00"
    assert schedule.next_after(fires[0]) == local(NEW_YORK, 2026, 3, 9, 2, 30)


def test_cron_top_of_skipped_hour_fires_once_at_three_berlin():
    fires = fires_on_local_day(cron("0 2 * * *", BERLIN), BERLIN, 2026, 3, 29)
    assert fires == [at(2026, 3, 29, 1, 0)]


def test_cron_fires_once_in_repeated_hour_on_fall_back_berlin():
    fires = fires_on_local_day(cron("30 2 * * *", BERLIN), BERLIN, 2026, 10, 25)
    assert len(fires) == 1
    assert fires[0].astimezone(ZoneInfo(BERLIN)).strftime("%H:%M") == "02:30"


def test_cron_fires_once_in_repeated_hour_on_fall_back_new_york():
    fires = fires_on_local_day(cron("30 1 * * *", NEW_YORK), NEW_YORK, 2026, 11, 1)
    assert len(fires) == 1
    assert fires[0].astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == "01:30"


def test_cron_daily_time_outside_transition_is_unaffected():
    assert fires_on_local_day(cron("0 9 * * *", BERLIN), BERLIN, 2026, 10, 25) == [at(2026, 10, 25, 8, 0)]
    assert fires_on_local_day(cron("0 9 * * *", BERLIN), BERLIN, 2026, 3, 29) == [at(2026, 3, 29, 7, 0)]


@pytest.mark.parametrize(
    ("tz", "day", "expression", "expected"),
    [
        (BERLIN, (2026, 10, 25), "0 * * * *", 25),
        (BERLIN, (2026, 10, 25), "*/30 * * * *", 50),
        (NEW_YORK, (2026, 11, 1), "0 * * * *", 25),
        (NEW_YORK, (2026, 11, 1), "*/30 * * * *", 50),
        (BERLIN, (2026, 3, 29), "0 * * * *", 23),
        (BERLIN, (2026, 3, 29), "*/30 * * * *", 46),
        (NEW_YORK, (2026, 3, 8), "0 * * * *", 23),
        (NEW_YORK, (2026, 3, 8), "*/30 * * * *", 46),
        (BERLIN, (2026, 10, 26), "0 * * * *", 24),
    ],
)
def test_cron_hourly_schedules_follow_real_time_across_transitions(tz, day, expression, expected):
    fires = fires_on_local_day(cron(expression, tz), tz, *day)
    assert len(fires) == expected
    # Real time: the fires are evenly spaced in UTC, with no gap and no repeat.
    step = timedelta(hours=1) if expression.startswith("0 ") else timedelta(minutes=30)
    assert all(later - earlier == step for earlier, later in zip(fires, fires[1:]))


def test_cron_hourly_fires_both_passes_of_repeated_hour_berlin():
    fires = fires_on_local_day(cron("0 * * * *", BERLIN), BERLIN, 2026, 10, 25)
    assert at(2026, 10, 25, 0, 0) in fires  # 02:00 CEST
    assert at(2026, 10, 25, 1, 0) in fires  # 02:00 CET


DST_EXPRESSIONS = ["0 * * * *", "*/30 * * * *", "30 2 * * *", "30 1 * * *", "0 2 * * *", "15 1-3 * * *"]
START_MINUTES = (0, 1, 10, 29, 30, 31, 45, 59)


def _assert_increasing_from(schedule: Schedule, after: datetime) -> None:
    times = schedule.next_times(after, 50)
    assert len(times) == 50
    assert_strictly_increasing([after, *times])


@pytest.mark.parametrize("expression", DST_EXPRESSIONS)
@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_cron_fire_times_strictly_increase_over_transition_day(transition, expression):
    tz, day, _hour = TRANSITIONS[transition]
    start, _end = local_day_bounds(tz, *day)
    _assert_increasing_from(cron(expression, tz), start - timedelta(hours=2))


@pytest.mark.parametrize("expression", DST_EXPRESSIONS)
@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("transition", ["berlin-spring", "new-york-spring"])
def test_cron_fire_times_strictly_increase_starting_inside_spring_gap(transition, fold, expression):
    tz, day, hour = TRANSITIONS[transition]
    for minute in START_MINUTES:
        _assert_increasing_from(cron(expression, tz), local(tz, *day, hour, minute, fold=fold))


@pytest.mark.parametrize("expression", DST_EXPRESSIONS)
@pytest.mark.parametrize("transition", ["berlin-fall", "new-york-fall"])
def test_cron_fire_times_strictly_increase_starting_in_first_pass_of_repeated_hour(transition, expression):
    tz, day, hour = TRANSITIONS[transition]
    for minute in START_MINUTES:
        _assert_increasing_from(cron(expression, tz), local(tz, *day, hour, minute, fold=0))


def _second_pass_params():
    params = []
    for transition in ("berlin-fall", "new-york-fall"):
        for expression in DST_EXPRESSIONS:
            # Fixed-time rules inside the repeated hour once answered a time of the first pass.
            params.append(pytest.param(transition, expression, id=f"{transition}-{expression}"))
    return params


@pytest.mark.parametrize(("transition", "expression"), _second_pass_params())
def test_cron_fire_times_strictly_increase_starting_in_second_pass_of_repeated_hour(transition, expression):
    tz, day, hour = TRANSITIONS[transition]
    for minute in START_MINUTES:
        _assert_increasing_from(cron(expression, tz), local(tz, *day, hour, minute, fold=1))


def test_cron_next_after_from_second_pass_of_repeated_hour_is_not_in_the_past_berlin():
    schedule = cron("30 2 * * *", BERLIN)
    after = local(BERLIN, 2026, 10, 25, 2, 10, fold=1)  # 01:10 UTC, 02:10 CET
    assert after == at(2026, 10, 25, 1, 10)
    # The 02:30 CEST fire (00:30 UTC) is already past; the next one is tomorrow 02:30 CET.
    assert schedule.next_after(after) == at(2026, 10, 26, 1, 30)


def test_cron_next_after_from_second_pass_of_repeated_hour_is_not_in_the_past_new_york():
    schedule = cron("30 1 * * *", NEW_YORK)
    after = local(NEW_YORK, 2026, 11, 1, 1, 10, fold=1)  # 06:10 UTC, 01:10 EST
    assert after == at(2026, 11, 1, 6, 10)
    assert schedule.next_after(after) == at(2026, 11, 2, 6, 30)


def test_cron_next_after_from_second_pass_after_the_fire_moves_to_next_day_berlin():
    schedule = cron("30 2 * * *", BERLIN)
    after = local(BERLIN, 2026, 10, 25, 2, 45, fold=1)
    assert schedule.next_after(after) == at(2026, 10, 26, 1, 30)


# --------------------------------------------------------------------------------------------
# One-off schedules
# --------------------------------------------------------------------------------------------


def test_once_fires_at_run_at_when_in_the_future():
    schedule = Schedule(kind="once", run_at=at(2026, 6, 1, 12, 0))
    assert schedule.next_after(at(2026, 5, 1)) == at(2026, 6, 1, 12, 0)
    assert schedule.next_times(at(2026, 5, 1), 5) == [at(2026, 6, 1, 12, 0)]


def test_once_returns_none_after_run_at():
    schedule = Schedule(kind="once", run_at=at(2026, 6, 1, 12, 0))
    assert schedule.next_after(at(2026, 6, 1, 12, 0)) is None  # strictly after
    assert schedule.next_after(at(2026, 6, 2)) is None
    assert schedule.next_times(at(2026, 6, 2), 5) == []


def test_once_with_end_at_before_run_at_never_fires():
    schedule = Schedule(kind="once", run_at=at(2026, 6, 1, 12, 0), end_at=at(2026, 6, 1, 11, 0))
    assert schedule.next_after(at(2026, 5, 1)) is None


def test_once_with_start_at_after_run_at_never_fires():
    schedule = Schedule(kind="once", run_at=at(2026, 6, 1, 12, 0), start_at=at(2026, 6, 2))
    assert schedule.next_after(at(2026, 5, 1)) is None


def test_once_without_run_at_raises_on_run_at():
    with pytest.raises(ScheduleError) as excinfo:
        Schedule(kind="once")
    assert excinfo.value.field == "run_at"


# --------------------------------------------------------------------------------------------
# start_at / end_at windows, time zones and kinds
# --------------------------------------------------------------------------------------------


def test_cron_window_first_fire_is_start_at_when_on_the_rule():
    schedule = cron("0 9 * * *", start_at=at(2026, 5, 10, 9, 0), end_at=at(2026, 5, 12, 9, 0))
    assert schedule.next_after(at(2026, 5, 1)) == at(2026, 5, 10, 9, 0)


def test_cron_window_first_fire_is_next_rule_time_after_start_at():
    schedule = cron("0 9 * * *", start_at=at(2026, 5, 10, 10, 0))
    assert schedule.next_after(at(2026, 5, 1)) == at(2026, 5, 11, 9, 0)


def test_cron_window_end_at_stops_the_schedule():
    schedule = cron("0 9 * * *", start_at=at(2026, 5, 10, 9, 0), end_at=at(2026, 5, 12, 9, 0))
    assert schedule.next_times(at(2026, 5, 1), 10) == [
        at(2026, 5, 10, 9, 0),
        at(2026, 5, 11, 9, 0),
        at(2026, 5, 12, 9, 0),
    ]
    assert schedule.next_after(at(2026, 5, 12, 9, 0)) is None
    assert schedule.next_after(at(2027, 1, 1)) is None


def test_cron_window_inside_window_behaves_like_plain_rule():
    windowed = cron("0 9 * * *", BERLIN, start_at=at(2026, 5, 1), end_at=at(2026, 6, 1))
    plain = cron("0 9 * * *", BERLIN)
    assert windowed.next_after(at(2026, 5, 15, 12, 0)) == plain.next_after(at(2026, 5, 15, 12, 0))


@pytest.mark.parametrize("kind_kwargs", [
    {"kind": "cron", "cron": "0 9 * * *"},
    {"kind": "interval", "every_seconds": 60},
    {"kind": "once", "run_at": at(2026, 5, 1, 12)},
])
@pytest.mark.parametrize("end_offset", [timedelta(0), -timedelta(hours=1)])
def test_end_at_not_after_start_at_raises_on_end_at(kind_kwargs, end_offset):
    start = at(2026, 5, 1, 9, 0)
    with pytest.raises(ScheduleError) as excinfo:
        Schedule(**kind_kwargs, start_at=start, end_at=start + end_offset)
    assert excinfo.value.field == "end_at"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd", "Europe/berlin", None])
def test_unknown_time_zone_raises_on_timezone(name):
    with pytest.raises(ScheduleError) as excinfo:
        cron("0 9 * * *", name)
    assert excinfo.value.field == "timezone"
    with pytest.raises(ScheduleError) as excinfo:
        every(60, timezone=name)
    assert excinfo.value.field == "timezone"


def test_zone_returns_zoneinfo_for_known_name():
    assert zone(BERLIN) == ZoneInfo(BERLIN)


def test_unknown_kind_raises_on_kind():
    with pytest.raises(ScheduleError) as excinfo:
        Schedule(kind="weekly")
    assert excinfo.value.field == "kind"


# --------------------------------------------------------------------------------------------
# describe()
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (900, "every 15 minutes"),
        (3600, "every hour"),
        (2 * 86400, "every 2 days"),
        (90, "every 90 seconds"),
        (1, "every second"),
        (60, "every minute"),
        (86400, "every day"),
        (5400, "every 90 minutes"),
        (7200, "every 2 hours"),
    ],
)
def test_describe_interval_texts(seconds, text):
    assert every(seconds).describe() == text
    assert describe_interval(seconds) == text


def test_describe_cron_weekdays_berlin():
    text = cron("0 9 * * 1-5", BERLIN).describe()
    assert "09:00" in text
    assert "Monday" in text
    assert "(Europe/Berlin)" in text
    assert text.endswith("(Europe/Berlin)")


def test_describe_cron_starts_lower_case():
    text = cron("0 9 * * 1-5", BERLIN).describe()
    assert text[0].islower()
    assert text.startswith("at 09:00")


def test_describe_cron_uses_utc_zone_by_default():
    assert cron("*/5 * * * *").describe().endswith("(UTC)")


def test_describe_once_shows_local_date_time_and_zone():
    schedule = Schedule(kind="once", run_at=at(2026, 7, 1, 12, 0), timezone=BERLIN)
    text = schedule.describe()
    assert "2026-07-01 14:00" in text  # local (CEST) time, not UTC
    assert "(Europe/Berlin)" in text


def test_describe_once_in_winter_uses_winter_offset():
    text = Schedule(kind="once", run_at=at(2026, 1, 15, 12, 0), timezone=NEW_YORK).describe()
    assert "2026-01-15 07:00" in text
    assert "(America/New_York)" in text


# --------------------------------------------------------------------------------------------
# to_dict() / from_dict()
# --------------------------------------------------------------------------------------------

ROUND_TRIP_SCHEDULES = {
    "interval-anchor": lambda: every(900, timezone=BERLIN, anchor=at(2026, 5, 1, 10, 0, 17)),
    "interval-window": lambda: every(
        3600, start_at=at(2026, 5, 1, 10, 0), end_at=at(2026, 6, 1), anchor=at(2026, 4, 1)
    ),
    "cron": lambda: cron("0 9 * * 1-5", BERLIN),
    "cron-window": lambda: cron(
        "*/30 * * * *", NEW_YORK, start_at=at(2026, 5, 1, 10, 0), end_at=at(2026, 6, 1)
    ),
    "once": lambda: Schedule(kind="once", run_at=at(2026, 7, 1, 12, 0), timezone=BERLIN),
    "once-window": lambda: Schedule(
        kind="once", run_at=at(2026, 7, 1, 12, 0), start_at=at(2026, 6, 1), end_at=at(2026, 8, 1)
    ),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP_SCHEDULES))
def test_to_dict_from_dict_round_trip_is_equal(name):
    original = ROUND_TRIP_SCHEDULES[name]()
    data = original.to_dict()
    restored = Schedule.from_dict(json.loads(json.dumps(data)))  # JSON-ready, as kept in Redis
    assert restored == original
    assert restored.to_dict() == data
    assert restored.anchor == original.anchor
    for after in (at(2026, 4, 15), at(2026, 5, 1, 10, 7), at(2026, 5, 20, 3, 3)):
        assert restored.next_times(after, 5) == original.next_times(after, 5)


def test_round_trip_keeps_interval_anchor_which_equality_ignores():
    original = every(900, anchor=at(2026, 5, 1, 10, 0, 17))
    shifted = original.with_anchor(at(2026, 5, 1, 10, 5))
    assert shifted == original  # anchor is compare=False
    assert shifted.next_after(at(2026, 5, 1, 12, 0)) != original.next_after(at(2026, 5, 1, 12, 0))
    restored = Schedule.from_dict(original.to_dict())
    assert restored.to_dict()["anchor"] == original.to_dict()["anchor"]
    assert restored.next_after(at(2026, 5, 1, 12, 0)) == original.next_after(at(2026, 5, 1, 12, 0))
    assert restored.next_after(at(2026, 5, 1, 12, 0)) == at(2026, 5, 1, 12, 0, 17)


def test_to_dict_omits_unset_fields_and_uses_iso_times():
    data = cron("0 9 * * 1-5", BERLIN).to_dict()
    assert data == {"kind": "cron", "timezone": BERLIN, "cron": "0 9 * * 1-5"}
    data = Schedule(kind="once", run_at=at(2026, 7, 1, 12, 0)).to_dict()
    assert data == {"kind": "once", "timezone": "UTC", "run_at": "2026-07-01T12:00:00+00:00"}


def test_from_dict_defaults_timezone_to_utc():
    schedule = Schedule.from_dict({"kind": "interval", "every_seconds": 60})
    assert schedule.timezone == "UTC"


def test_from_dict_validates():
    with pytest.raises(ScheduleError) as excinfo:
        Schedule.from_dict({"kind": "cron", "cron": "61 * * * *"})
    assert excinfo.value.field == "cron"


def test_with_anchor_returns_copy_counting_from_new_anchor():
    original = every(600)
    anchored = original.with_anchor(at(2026, 5, 1, 10, 0))
    assert original.anchor is None
    assert anchored.anchor == at(2026, 5, 1, 10, 0)
    assert anchored.next_after(at(2026, 5, 1, 10, 3)) == at(2026, 5, 1, 10, 10)
