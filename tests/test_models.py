"""Models: the migrations build exactly them, and their small behaviours."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from webapp.extensions import db
from webapp.models import Job, JobRun, User
from webapp.schedules import Schedule


def test_migrations_build_exactly_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_job_schedule_round_trips_through_its_columns(app):
    schedule = Schedule(kind="cron", cron="0 9 * * 1-5", timezone="Europe/Berlin",
                        start_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    job = Job(name="Report", task="report.runs_csv", queue="report")
    job.schedule = schedule
    assert job.schedule == schedule and job.start_at.tzinfo is None  # stored as naive UTC


def test_job_name_key_follows_the_name_case_folded():
    job = Job(name="Straße Ärger")
    assert job.name_key == "strasse ärger"


def test_run_is_active_only_while_queued_or_running():
    assert [JobRun(status=s).is_active for s in ("queued", "running", "succeeded", "failed",
                                                  "skipped", "lost")] == [True, True] + [False] * 4


def test_user_password_is_hashed_and_checked():
    user = User(username="ops", role="viewer")
    user.set_password("correct horse")
    assert "correct horse" not in user.password_hash
    assert user.check_password("correct horse") and not user.check_password("wrong")
    assert not user.can_edit and User(role="admin").can_edit
