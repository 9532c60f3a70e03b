"""The embedded backend really fires jobs: APScheduler threads, SQLite, the file lock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.support import runs_of, wait_for
from webapp import create_app
from webapp.extensions import db
from webapp.models import Job, JobRun
from webapp.models.clock import to_db
from webapp.services import jobs as service

pytestmark = pytest.mark.integration




def count_runs(app, job_id):
    """Return how many runs a job has."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(JobRun).where(JobRun.job_id == job_id))


@pytest.fixture
def scheduler(app):
    """Start the app's embedded scheduler and wait until this process leads."""
    backend = app.extensions["scheduler"]
    backend.start()
    wait_for(lambda: backend.is_leader, message="the scheduler lock")
    yield backend
    backend.shutdown()


def test_interval_job_fires_every_second_and_records_runs(app, scheduler, make_job):
    job_id = make_job(every="1", every_unit="seconds")
    wait_for(lambda: len(runs_of(app, job_id, "succeeded")) >= 3, message="three succeeded runs")
    runs = runs_of(app, job_id, "succeeded")
    assert all(r.trigger == "schedule" and r.duration_ms is not None and r.worker for r in runs)
    instants = [r.scheduled_for for r in runs[:3]]
    assert [(b - a).total_seconds() for a, b in zip(instants, instants[1:])] == [1.0, 1.0]


def test_paused_job_does_not_fire_and_resume_restarts_it(app, scheduler, make_job):
    job_id = make_job(every="1", every_unit="seconds")
    wait_for(lambda: count_runs(app, job_id) >= 1, message="a first run")
    with app.app_context():
        service.pause(job_id, "admin")
    settled = count_runs(app, job_id)
    # Nothing to wait for when proving an absence: watch for three intervals.
    with pytest.raises(AssertionError):
        wait_for(lambda: count_runs(app, job_id) > settled, timeout=3, message="no new run")
    with app.app_context():
        service.resume(job_id, "admin")
    wait_for(lambda: count_runs(app, job_id) > settled, message="a run after resume")


def test_failing_task_records_error_and_traceback(app, scheduler, make_job):
    job_id = make_job(task="system.fail", **{"param.message": "disk full", "param.seconds": None},
                      every="1", every_unit="seconds")
    failed = wait_for(lambda: runs_of(app, job_id, "failed"), message="a failed run")[0]
    assert failed.error == "RuntimeError: disk full"
    assert "Traceback" in failed.traceback and "disk full" in failed.traceback
    assert failed.finished_at is not None and failed.duration_ms is not None


def test_overlapping_run_is_skipped_and_recorded(app, scheduler, make_job):
    job_id = make_job(every="1", every_unit="seconds", **{"param.seconds": "3"})
    skipped = wait_for(lambda: runs_of(app, job_id, "skipped"), message="a skipped run")[0]
    assert "still going" in skipped.error
    assert len(runs_of(app, job_id, "running")) == 1


def test_run_now_executes_at_once(app, scheduler, make_job):
    job_id = make_job(every="1", every_unit="days")
    with app.app_context():
        run_id = service.run_now(job_id, "admin").id
    wait_for(lambda: db_status(app, run_id) == "succeeded", message="the manual run to succeed")
    run = runs_of(app, job_id)[0]
    assert (run.trigger, run.triggered_by) == ("manual", "admin")


def db_status(app, run_id):
    with app.app_context():
        return db.session.get(JobRun, run_id).status


def test_edit_does_not_fire_the_job(app, scheduler, make_job):
    job_id = make_job(every="1", every_unit="hours")
    with app.app_context():
        before = db.session.get(Job, job_id).next_run_at
        from tests.support import job_fields

        service.update_job(job_id, job_fields(name="renamed", every="1", every_unit="hours"), "admin")
        assert db.session.get(Job, job_id).next_run_at == before
    with pytest.raises(AssertionError):
        wait_for(lambda: count_runs(app, job_id), timeout=1.5, message="no run")


def second_app(app):
    """Return another app on the same database and lock file: a second web process."""
    return create_app({k: app.config[k] for k in (
        "TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "SCHEDULER_LOCK_FILE",
        "ARTIFACT_DIR", "ETL_IMPORT_DIR", "ETL_DATABASE_URL", "SCHEDULER_SYNC_SECONDS")})


def test_only_one_process_fires_and_another_takes_over(app, scheduler, make_job):
    other = second_app(app)
    other_backend = other.extensions["scheduler"]
    other_backend.start()
    try:
        job_id = make_job(every="1", every_unit="seconds")
        wait_for(lambda: count_runs(app, job_id) >= 2, message="runs")
        assert not other_backend.is_leader
        scheduler.shutdown()  # the leader goes away
        wait_for(lambda: other_backend.is_leader, message="the other process to take over")
        taken_over = count_runs(app, job_id)
        wait_for(lambda: count_runs(app, job_id) > taken_over + 1, message="runs after takeover")
        with app.app_context():
            instants = list(db.session.scalars(select(JobRun.scheduled_for).where(JobRun.job_id == job_id)))
        assert len(instants) == len(set(instants)), "an instant was recorded twice"
    finally:
        other_backend.shutdown()


def test_change_made_in_another_process_reaches_the_leader(app, scheduler):
    other = second_app(app)
    with other.app_context():
        from tests.support import job_fields

        job_id = service.add(job_fields(name="made elsewhere", every="1", every_unit="seconds"), "admin").id
    wait_for(lambda: count_runs(app, job_id) >= 1, message="the leader to fire a job made elsewhere")


def set_next_run(app, job_id, when):
    """Pretend the job was saved long ago and its next run passed while nothing was firing."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.anchor_at = to_db(when - timedelta(minutes=30))
        job.next_run_at = to_db(when)
        db.session.commit()


@pytest.mark.parametrize("policy, status", [("run_once", "succeeded"), ("skip", "skipped")])
def test_misfire_policy_after_downtime(app, make_job, policy, status):
    job_id = make_job(every="1", every_unit="minutes", misfire_policy=policy)
    set_next_run(app, job_id, datetime.now(timezone.utc) - timedelta(minutes=10))
    backend = app.extensions["scheduler"]
    backend.start()
    try:
        runs = wait_for(lambda: runs_of(app, job_id, status), message=f"a {status} catch-up run")
        assert len(runs) == 1 and runs[0].trigger == "misfire"
        if policy == "skip":
            assert "Skipped 10 run(s)" in runs[0].error or "Skipped 11 run(s)" in runs[0].error
        with app.app_context():
            assert db.session.get(Job, job_id).next_run > datetime.now(timezone.utc)
    finally:
        backend.shutdown()


def test_runs_left_running_by_a_dead_process_are_marked_lost(app, make_job):
    job_id = make_job(every="1", every_unit="days")
    with app.app_context():
        db.session.add(JobRun(job_id=job_id, job_name="x", task="system.sleep", queue="system",
                              status="running"))
        db.session.commit()
    backend = app.extensions["scheduler"]
    backend.start()
    try:
        lost = wait_for(lambda: runs_of(app, job_id, "lost"), message="the run marked lost")
        assert "stopped" in lost[0].error
    finally:
        backend.shutdown()


def test_workers_status_reports_the_leader(app, scheduler, make_job):
    make_job(every="1", every_unit="hours")
    with app.app_context():
        status = scheduler.status()
    assert status["running"] and status["this_process_leads"]
    assert status["jobs"] == 1 and status["threads"] == app.config["SCHEDULER_THREADS"]
