"""The scheduler service and the firing rules, called directly with no scheduler running.

Every test works in an app context on the fixture's SQLite database; times are checked
against the real clock read before and after each call, never by sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.support import job_fields
from webapp.extensions import db
from webapp.models import AuditEvent, Job, JobRun, ScheduleRevision
from webapp.models.clock import from_db, to_db
from webapp.schedules import ScheduleError
from webapp.services import firing, jobspec
from webapp.services import jobs as service

FIFTEEN_MINUTES = timedelta(minutes=15)


@pytest.fixture
def ctx(app):
    """Run the test inside an app context."""
    with app.app_context():
        yield


# -- helpers ---------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(timezone.utc)


def schedule_revision() -> int:
    """Return the global schedule revision (0 when no job was ever changed)."""
    return db.session.scalar(select(ScheduleRevision.value).where(ScheduleRevision.id == 1)) or 0


def reload(job_id: int) -> Job:
    """Return the job as stored, not as cached by the session."""
    db.session.expire_all()
    return db.session.get(Job, job_id)


def audit_events(action: str | None = None) -> list[AuditEvent]:
    """Return the audit events, oldest first, optionally of one action."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query))


def runs_of(job_id: int | None = None) -> list[JobRun]:
    """Return the runs (of one job, or all), oldest first, as stored."""
    db.session.expire_all()
    query = select(JobRun).order_by(JobRun.id)
    if job_id is not None:
        query = query.where(JobRun.job_id == job_id)
    return list(db.session.scalars(query))


def place(job_id: int, *, anchor: datetime | None = None, next_run: datetime | None = None) -> Job:
    """Store a job's interval anchor and next run directly, as if time had passed."""
    job = db.session.get(Job, job_id)
    if anchor is not None:
        job.anchor_at = to_db(anchor)
    job.next_run_at = to_db(next_run)
    db.session.commit()
    return reload(job_id)


def on_grid(moment: datetime, anchor: datetime, step: timedelta) -> bool:
    """Return whether a moment is a whole number of steps after the anchor."""
    return (moment - anchor) % step == timedelta(0) and moment > anchor


def long_ago() -> datetime:
    """Return an anchor ten days and seven minutes ago, off the quarter-hour of now."""
    return now().replace(microsecond=0) - timedelta(days=10, minutes=7)


# -- add -------------------------------------------------------------------------------------


def test_add_stores_the_job_with_its_first_run_one_interval_from_now(ctx):
    before = now()
    job = service.add(job_fields(name="fetch prices", every="15", every_unit="minutes"), "alice")
    after = now()
    stored = reload(job.id)
    assert stored.name == "fetch prices" and stored.task == "system.sleep"
    assert stored.queue == "system" and stored.params == {"seconds": 0.0}
    assert stored.created_by == "alice" and not stored.paused
    assert before + FIFTEEN_MINUTES <= stored.next_run <= after + FIFTEEN_MINUTES
    assert stored.next_run == from_db(stored.anchor_at) + FIFTEEN_MINUTES


def test_add_bumps_the_schedule_revision_and_the_job_revision(ctx):
    start = schedule_revision()
    first = service.add(job_fields(name="one"), "admin")
    assert schedule_revision() == start + 1
    second = service.add(job_fields(name="two"), "admin")
    assert schedule_revision() == start + 2
    assert reload(first.id).revision == reload(second.id).revision == 1


def test_add_writes_an_audit_event_describing_the_job(ctx):
    job = service.add(job_fields(name="nightly", every="2", every_unit="hours"), "alice")
    (event,) = audit_events("create")
    assert (event.username, event.target_type, event.target_id, event.target_name) == (
        "alice", "job", job.id, "nightly")
    assert event.detail["task"] == "system.sleep"
    assert event.detail["schedule"] == "every 2 hours"
    assert event.detail["paused"] is False


def test_add_of_invalid_fields_stores_nothing_and_changes_no_revision(ctx):
    start = schedule_revision()
    with pytest.raises(jobspec.JobErrors) as caught:
        service.add(job_fields(name="", every="-1"), "admin")
    assert set(caught.value.errors) == {"name", "every"}
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0
    assert schedule_revision() == start
    assert audit_events() == []


# -- update ----------------------------------------------------------------------------------


def test_update_that_keeps_the_schedule_keeps_the_next_run(ctx, make_job):
    job_id = make_job(name="keep", every="15", every_unit="minutes")
    planned = reload(job_id).next_run
    revision, global_revision = reload(job_id).revision, schedule_revision()
    service.update_job(job_id, job_fields(name="keep renamed", description="now described",
                                          **{"param.seconds": "2"}), "admin")
    job = reload(job_id)
    assert job.name == "keep renamed" and job.params == {"seconds": 2.0}
    assert job.next_run == planned
    assert job.revision == revision + 1
    assert schedule_revision() == global_revision + 1


def test_update_of_a_job_whose_next_run_has_passed_moves_it_to_the_future(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    anchor = long_ago()
    place(job_id, anchor=anchor, next_run=anchor + FIFTEEN_MINUTES)
    before = now()
    service.update_job(job_id, job_fields(name="renamed"), "admin")
    job = reload(job_id)
    assert before < job.next_run <= before + FIFTEEN_MINUTES
    assert on_grid(job.next_run, anchor, FIFTEEN_MINUTES)


def test_update_that_changes_the_schedule_recomputes_the_next_run_after_now(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    anchor = long_ago()
    place(job_id, anchor=anchor, next_run=now() + timedelta(minutes=3))
    before = now()
    service.update_job(job_id, job_fields(name="hourly", every="1", every_unit="hours"), "admin")
    job = reload(job_id)
    assert job.every_seconds == 3600
    assert before < job.next_run <= before + timedelta(hours=1)
    # The interval still counts from the job's original anchor.
    assert on_grid(job.next_run, anchor, timedelta(hours=1))


def test_update_from_interval_to_cron_takes_the_next_cron_instant(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    before = now()
    service.update_job(job_id, job_fields(schedule_kind="cron", cron="0 * * * *"), "admin")
    job = reload(job_id)
    expected = before.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert job.schedule_kind == "cron" and job.next_run == expected


def test_update_records_the_changes_in_the_audit_log(ctx, make_job):
    job_id = make_job(name="edited", every="15", every_unit="minutes")
    service.update_job(job_id, job_fields(name="edited", every="30"), "bob")
    (event,) = audit_events("edit")
    assert event.username == "bob" and event.target_id == job_id
    assert event.detail["changes"] == {"schedule": ["every 15 minutes", "every 30 minutes"]}


def test_one_off_job_that_already_ran_can_still_be_renamed(ctx, make_job):
    run_at = (now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    job_id = make_job(name="one-off", schedule_kind="once", run_at=run_at)
    job = reload(job_id)
    # Its time came and it fired: the run time is in the past and nothing is planned any more.
    job.run_at = to_db(now() - timedelta(hours=1))
    job.next_run_at = None
    db.session.commit()
    fields = {**jobspec.form_values(reload(job_id)), "name": "one-off (done)"}
    service.update_job(job_id, fields, "admin")
    job = reload(job_id)
    assert job.name == "one-off (done)" and job.next_run is None


# -- pause and resume ------------------------------------------------------------------------


def test_pause_clears_the_next_run_and_bumps_the_revisions(ctx, make_job):
    job_id = make_job()
    revision, global_revision = reload(job_id).revision, schedule_revision()
    service.pause(job_id, "admin")
    job = reload(job_id)
    assert job.paused and job.next_run_at is None
    assert job.revision == revision + 1 and schedule_revision() == global_revision + 1
    assert [(e.username, e.target_id) for e in audit_events("pause")] == [("admin", job_id)]


def test_pausing_a_paused_job_changes_nothing_and_writes_no_second_audit_event(ctx, make_job):
    job_id = make_job()
    service.pause(job_id, "admin")
    revision, global_revision = reload(job_id).revision, schedule_revision()
    service.pause(job_id, "admin")
    job = reload(job_id)
    assert job.paused and job.next_run_at is None
    assert job.revision == revision and schedule_revision() == global_revision
    assert len(audit_events("pause")) == 1


def test_resume_plans_the_next_grid_instant_after_now_not_a_missed_one(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    anchor = long_ago()
    place(job_id, anchor=anchor, next_run=anchor + FIFTEEN_MINUTES)
    service.pause(job_id, "admin")
    before = now()
    service.resume(job_id, "carol")
    after = now()
    job = reload(job_id)
    assert not job.paused
    assert before < job.next_run <= after + FIFTEEN_MINUTES
    assert on_grid(job.next_run, anchor, FIFTEEN_MINUTES)
    assert [(e.username, e.target_id) for e in audit_events("resume")] == [("carol", job_id)]
    assert runs_of(job_id) == []


def test_resuming_a_job_that_is_not_paused_changes_nothing(ctx, make_job):
    job_id = make_job()
    planned, revision = reload(job_id).next_run, reload(job_id).revision
    service.resume(job_id, "admin")
    job = reload(job_id)
    assert job.next_run == planned and job.revision == revision
    assert audit_events("resume") == []


# -- remove ----------------------------------------------------------------------------------


def test_remove_deletes_the_job_and_keeps_its_runs_without_a_job(ctx, make_job):
    job_id = make_job(name="doomed")
    other_id = make_job(name="survivor")
    service.run_now(job_id, "admin")
    service.run_now(other_id, "admin")
    global_revision = schedule_revision()
    assert service.remove(job_id, "admin") == "doomed"
    assert reload(job_id) is None
    orphans = [run for run in runs_of() if run.job_name == "doomed"]
    assert len(orphans) == 1 and orphans[0].job_id is None
    assert len(runs_of(other_id)) == 1
    assert schedule_revision() == global_revision + 1
    (event,) = audit_events("delete")
    assert event.target_name == "doomed" and event.detail["task"] == "system.sleep"


def test_remove_of_a_missing_job_is_404(ctx):
    from werkzeug.exceptions import NotFound

    with pytest.raises(NotFound):
        service.remove(12345, "admin")


# -- run now ---------------------------------------------------------------------------------


def test_run_now_queues_a_manual_run_that_names_who_asked(ctx, make_job):
    job_id = make_job(name="manual")
    run = service.run_now(job_id, "dave")
    (stored,) = runs_of(job_id)
    assert stored.id == run.id
    assert (stored.status, stored.trigger, stored.triggered_by) == ("queued", "manual", "dave")
    assert stored.scheduled_for is None and stored.job_name == "manual"
    assert stored.params == {"seconds": 0.0}
    assert reload(job_id).last_run_id == run.id
    assert [(e.username, e.target_id) for e in audit_events("run")] == [("dave", job_id)]


def test_second_run_now_while_one_is_queued_is_recorded_as_skipped(ctx, make_job):
    job_id = make_job(max_concurrent="1")
    service.run_now(job_id, "admin")
    second = service.run_now(job_id, "admin")
    first, skipped = runs_of(job_id)
    assert first.status == "queued"
    assert skipped.id == second.id and skipped.status == "skipped"
    assert skipped.error == "Skipped: 1 run(s) still going, the job allows 1."
    assert skipped.finished_at is not None and skipped.trigger == "manual"


def test_run_now_within_the_concurrency_limit_queues_each_run(ctx, make_job):
    job_id = make_job(max_concurrent="2")
    service.run_now(job_id, "admin")
    service.run_now(job_id, "admin")
    third = service.run_now(job_id, "admin")
    assert [run.status for run in runs_of(job_id)] == ["queued", "queued", "skipped"]
    assert third.error == "Skipped: 2 run(s) still going, the job allows 2."


# -- status and preview ----------------------------------------------------------------------


def test_status_reports_next_runs_and_active_runs(ctx, make_job):
    job_id = make_job(name="watched", every="15", every_unit="minutes")
    service.run_now(job_id, "admin")
    status = service.status(job_id)
    job = reload(job_id)
    assert status["id"] == job_id and status["name"] == "watched"
    assert status["paused"] is False
    assert status["next_run"] == job.next_run
    assert status["next_runs"] == [job.next_run + k * FIFTEEN_MINUTES for k in range(1, 5)]
    assert status["active_runs"] == 1
    assert status["last_run_status"] == "queued"


def test_status_of_a_paused_job_without_runs(ctx, make_job):
    job_id = make_job(enabled=None)
    status = service.status(job_id)
    assert status["paused"] is True
    assert status["next_run"] is None and status["next_runs"] == []
    assert status["active_runs"] == 0 and status["last_run_status"] is None


def test_preview_of_an_interval_returns_five_increasing_times_from_now(ctx):
    before = now()
    schedule, times = service.preview({"schedule_kind": "interval", "every": "10",
                                       "every_unit": "minutes", "timezone": "UTC"})
    after = now()
    assert schedule.describe() == "every 10 minutes"
    assert len(times) == 5
    assert all(a < b for a, b in zip(times, times[1:]))
    assert before + timedelta(minutes=10) <= times[0] <= after + timedelta(minutes=10)
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(minutes=10)] * 4


def test_preview_of_a_cron_returns_five_increasing_matching_times(ctx):
    before = now()
    _, times = service.preview({"schedule_kind": "cron", "cron": "30 6 * * *", "timezone": "UTC"})
    assert len(times) == 5 and all(a < b for a, b in zip(times, times[1:]))
    assert times[0] > before
    assert all((t.hour, t.minute, t.second) == (6, 30, 0) for t in times)


def test_preview_of_an_invalid_schedule_raises_a_schedule_error(ctx):
    with pytest.raises(ScheduleError) as caught:
        service.preview({"schedule_kind": "cron", "cron": "61 * * * *"})
    assert caught.value.field == "cron"


# -- firing ----------------------------------------------------------------------------------


def due_job(make_job, *, late: timedelta = timedelta(seconds=5), **fields) -> tuple[int, datetime]:
    """Return a 15-minute job whose next run (on its grid) passed `late` ago, and that instant."""
    job_id = make_job(every="15", every_unit="minutes", **fields)
    instant = now().replace(microsecond=0) - late
    place(job_id, anchor=instant - FIFTEEN_MINUTES, next_run=instant)
    return job_id, instant


def test_fire_records_the_due_instant_and_advances_the_next_run(ctx, make_job):
    job_id, instant = due_job(make_job)
    run = firing.fire(job_id, now())
    assert run is not None
    (stored,) = runs_of(job_id)
    assert stored.id == run.id
    assert (stored.status, stored.trigger) == ("queued", "schedule")
    assert from_db(stored.scheduled_for) == instant
    job = reload(job_id)
    assert job.next_run == instant + FIFTEEN_MINUTES
    assert job.last_run_id == run.id


def test_fire_within_a_second_before_the_instant_fires(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    instant = now() + timedelta(milliseconds=500)
    place(job_id, anchor=instant - FIFTEEN_MINUTES, next_run=instant)
    assert firing.fire(job_id, now()) is not None
    assert reload(job_id).next_run == from_db(to_db(instant)) + FIFTEEN_MINUTES


def test_fire_of_a_job_not_yet_due_does_nothing(ctx, make_job):
    job_id = make_job(every="15", every_unit="minutes")
    planned = now().replace(microsecond=0) + timedelta(minutes=1)
    place(job_id, next_run=planned)
    assert firing.fire(job_id, now()) is None
    assert runs_of(job_id) == []
    assert reload(job_id).next_run == planned


def test_fire_of_a_paused_job_does_nothing(ctx, make_job):
    job_id, _ = due_job(make_job)
    job = db.session.get(Job, job_id)
    job.paused = True  # paused, with a stale next_run_at still set
    db.session.commit()
    assert firing.fire(job_id, now()) is None
    assert runs_of(job_id) == []


def test_fire_of_a_missing_job_does_nothing(ctx):
    assert firing.fire(9999, now()) is None


def test_fire_of_an_instant_already_recorded_keeps_one_row_and_still_moves_on(ctx, make_job):
    job_id, instant = due_job(make_job, max_concurrent="5")
    first = firing.fire(job_id, now())
    assert first is not None
    place(job_id, next_run=instant)  # a second sender wakes up for the same instant
    assert firing.fire(job_id, now()) is None
    runs = runs_of(job_id)
    assert [(r.id, from_db(r.scheduled_for)) for r in runs] == [(first.id, instant)]
    assert reload(job_id).next_run == instant + FIFTEEN_MINUTES


def test_fire_of_an_instant_already_recorded_while_at_the_limit_keeps_one_row(ctx, make_job):
    job_id, instant = due_job(make_job, max_concurrent="1")
    first = firing.fire(job_id, now())
    place(job_id, next_run=instant)
    assert firing.fire(job_id, now()) is None
    assert [r.id for r in runs_of(job_id)] == [first.id]
    assert runs_of(job_id)[0].status == "queued"
    assert reload(job_id).next_run == instant + FIFTEEN_MINUTES


def test_fire_while_a_run_is_going_records_a_skipped_run_and_moves_on(ctx, make_job):
    job_id, instant = due_job(make_job, max_concurrent="1")
    service.run_now(job_id, "admin")
    run = firing.fire(job_id, now())
    assert run.status == "skipped" and from_db(run.scheduled_for) == instant
    assert reload(job_id).next_run == instant + FIFTEEN_MINUTES


def test_fire_of_a_one_off_job_leaves_nothing_planned(ctx, make_job):
    run_at = (now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    job_id = make_job(schedule_kind="once", run_at=run_at)
    instant = now().replace(microsecond=0) - timedelta(seconds=2)
    job = db.session.get(Job, job_id)
    job.run_at = job.next_run_at = to_db(instant)
    db.session.commit()
    assert firing.fire(job_id, now()).status == "queued"
    assert reload(job_id).next_run is None


# -- catch-up after downtime ------------------------------------------------------------------


def missed_job(make_job, policy: str, missed: timedelta) -> tuple[int, datetime]:
    """Return a one-minute job whose next run (on its grid) passed `missed` ago."""
    job_id = make_job(every="1", every_unit="minutes", misfire_policy=policy)
    instant = now().replace(microsecond=0) - missed
    place(job_id, anchor=instant - timedelta(minutes=1), next_run=instant)
    return job_id, instant


def test_catch_up_with_run_once_queues_one_run_and_plans_from_now(ctx, make_job):
    job_id, missed_from = missed_job(make_job, "run_once", timedelta(minutes=9, seconds=30))
    moment = now()
    run = firing.catch_up(db.session.get(Job, job_id), moment)
    (stored,) = runs_of(job_id)
    assert stored.id == run.id
    assert (stored.status, stored.trigger) == ("queued", "misfire")
    assert from_db(stored.scheduled_for) == missed_from and stored.error is None
    job = reload(job_id)
    assert moment < job.next_run <= moment + timedelta(minutes=1)
    assert on_grid(job.next_run, missed_from, timedelta(minutes=1))


def test_catch_up_with_skip_records_one_skipped_run_counting_the_missed_instants(ctx, make_job):
    job_id, missed_from = missed_job(make_job, "skip", timedelta(minutes=9, seconds=30))
    moment = now().replace(microsecond=0)
    run = firing.catch_up(db.session.get(Job, job_id), moment)
    (stored,) = runs_of(job_id)
    assert stored.id == run.id
    assert (stored.status, stored.trigger) == ("skipped", "misfire")
    assert stored.error == (
        f"Skipped 10 run(s) missed while the scheduler was down, "
        f"from {missed_from:%Y-%m-%d %H:%M:%S} UTC (misfire policy: skip)."
    )
    job = reload(job_id)
    assert moment < job.next_run <= moment + timedelta(minutes=1)


def test_no_catch_up_within_the_misfire_grace_time(app, ctx, make_job):
    grace = app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"]
    assert grace > 10
    job_id, missed_from = missed_job(make_job, "run_once", timedelta(seconds=grace - 10))
    assert firing.catch_up(db.session.get(Job, job_id), now()) is None
    assert runs_of(job_id) == []
    assert reload(job_id).next_run == missed_from


def test_catch_up_honours_a_configured_grace_time(app, ctx, make_job):
    app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"] = 600
    job_id, _ = missed_job(make_job, "run_once", timedelta(minutes=5))
    assert firing.catch_up(db.session.get(Job, job_id), now()) is None
    app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"] = 60
    assert firing.catch_up(db.session.get(Job, job_id), now()).status == "queued"


def test_catch_up_of_a_paused_job_does_nothing(ctx, make_job):
    job_id, _ = missed_job(make_job, "run_once", timedelta(hours=1))
    job = db.session.get(Job, job_id)
    job.paused = True
    db.session.commit()
    assert firing.catch_up(reload(job_id), now()) is None
    assert runs_of(job_id) == []
