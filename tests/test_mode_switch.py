"""Switching USE_CELERY keeps every job, its paused state and history, and the same instants."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.celery_fixtures import redis_server  # noqa: F401 (fixture)
from tests.support import job_fields, wait_for
from webapp import create_app
from webapp.extensions import db
from webapp.models import Job, JobRun
from webapp.schedules import Schedule
from webapp.services import jobs as service
from webapp.services.scheduler.embedded import ScheduleTrigger
from webapp.services.scheduler.projection import record

pytestmark = pytest.mark.integration


def celery_twin(app, redis_url):
    """Return a Celery-mode admin on the same database as `app`."""
    config = {k: app.config[k] for k in ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI",
                                         "ARTIFACT_DIR", "ETL_IMPORT_DIR", "ETL_DATABASE_URL")}
    return create_app({**config, "USE_CELERY": True, "CELERY_BROKER_URL": redis_url,
                       "CELERY_RESULT_BACKEND": redis_url, "SCHEDULE_REDIS_URL": redis_url,
                       "SCHEDULE_REDIS_PREFIX": f"switch-{id(app)}"})


def snapshot(app):
    """Return every job's (name, paused, next run) and the number of runs."""
    with app.app_context():
        jobs = sorted((j.name, j.paused, j.next_run_at) for j in db.session.scalars(select(Job)))
        return jobs, db.session.scalar(select(func.count()).select_from(JobRun))


def test_switching_modes_keeps_jobs_paused_state_history_and_instants(app, redis_server):  # noqa: F811
    with app.app_context():
        interval = service.add(job_fields(name="every 5 min", every="5"), "admin").id
        berlin = service.add(job_fields(name="berlin weekdays", schedule_kind="cron",
                                        cron="30 2 * * 1-5", timezone="Europe/Berlin"), "admin").id
        paused = service.add(job_fields(name="paused one", every="1", every_unit="hours"), "admin").id
        service.pause(paused, "admin")
        service.run_now(interval, "admin")  # history: one manual run
    embedded_scheduler = app.extensions["scheduler"]
    embedded_scheduler.start()
    wait_for(lambda: embedded_scheduler.is_leader, message="embedded scheduler")
    before = snapshot(app)
    embedded_scheduler.shutdown()

    twin = celery_twin(app, f"{redis_server.url}/60")
    backend = twin.extensions["scheduler"]
    try:
        with twin.app_context():
            backend.sync()
            store = backend.store
            assert snapshot(twin) == before
            for job_id in (interval, berlin):
                job = db.session.get(Job, job_id)
                assert store.score(job_id) == job.next_run.timestamp()
                # The beat computes the following instants from the record: the same as embedded.
                from_redis = Schedule.from_dict(store.records([job_id])[str(job_id)]["schedule"])
                trigger = ScheduleTrigger(job.schedule)
                beat_times, aps_times, moment, previous = [], [], job.next_run, job.next_run
                for _ in range(5):
                    moment = from_redis.next_after(moment)
                    beat_times.append(moment)
                    previous = trigger.get_next_fire_time(previous, previous)
                    aps_times.append(previous)
                assert beat_times == aps_times
            assert store.score(paused) is None
    finally:
        backend.shutdown()

    embedded_again = app.extensions["scheduler"]
    embedded_again.start()
    try:
        wait_for(lambda: embedded_again.is_leader, message="embedded scheduler again")
        assert snapshot(app) == before
        held = {j.id: j.next_run_time for j in embedded_again.scheduler.get_jobs()}
        with app.app_context():
            assert held == {str(i): db.session.get(Job, i).next_run for i in (interval, berlin)}
    finally:
        embedded_again.shutdown()


@pytest.mark.parametrize("zone, cron, start", [
    ("Europe/Berlin", "30 2 * * *", datetime(2026, 3, 27, tzinfo=timezone.utc)),
    ("Europe/Berlin", "30 2 * * *", datetime(2026, 10, 23, tzinfo=timezone.utc)),
    ("America/New_York", "30 1 * * *", datetime(2026, 10, 30, tzinfo=timezone.utc)),
    ("America/New_York", "0 * * * *", datetime(2026, 3, 7, 22, tzinfo=timezone.utc)),
])
def test_both_modes_fire_at_the_same_instants_across_dst(app, zone, cron, start):
    with app.app_context():
        job_id = service.add(job_fields(name=f"dst {zone} {cron}", schedule_kind="cron", cron=cron,
                                        timezone=zone), "admin").id
        job = db.session.get(Job, job_id)
        beat_schedule = Schedule.from_dict(record(job)["schedule"])  # what the beat reads
        trigger = ScheduleTrigger(job.schedule)  # what APScheduler asks
    beat, aps, moment, previous = [], [], start, None
    for _ in range(30):
        moment = beat_schedule.next_after(moment)
        beat.append(moment)
        previous = trigger.get_next_fire_time(previous, start)
        aps.append(previous)
    assert beat == aps
    assert all(b > a for a, b in zip(beat, beat[1:]))
    assert all(t - start < timedelta(days=40) for t in beat)
