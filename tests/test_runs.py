"""tasks.runs, the one place that records runs: queue, claim, execute, finish, fail, lose.

Runs execute real built-in task types in the test's own thread; nothing is mocked.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from tasks import registry, runs
from webapp.extensions import db
from webapp.models import Job, JobRun
from webapp.models.clock import from_db


@pytest.fixture
def ctx(app):
    """Run the test inside an app context."""
    with app.app_context():
        yield


# -- helpers ---------------------------------------------------------------------------------


def queued(make_job, **fields) -> int:
    """Create a job and queue one manual run of it; return the run id."""
    job = db.session.get(Job, make_job(**fields))
    return runs.queue_run(job, trigger="manual", by="admin").id


def stored(run_id: int) -> JobRun:
    """Return the run as stored, not as cached by the session."""
    db.session.expire_all()
    return db.session.get(JobRun, run_id)


def orphan_run(task: str, params: dict | None = None, **values) -> int:
    """Store a queued run that belongs to no job; return its id."""
    run = JobRun(job_name="by hand", task=task, queue="system", params=params or {}, **values)
    db.session.add(run)
    db.session.commit()
    return run.id


FAIL = {"task": "system.fail", "param.seconds": None}


# -- queue -----------------------------------------------------------------------------------


def test_queue_run_copies_the_job_at_that_moment(ctx, make_job):
    job_id = make_job(name="copied", **{"param.seconds": "1.5"})
    job = db.session.get(Job, job_id)
    run = runs.queue_run(job, trigger="manual", by="erin")
    row = stored(run.id)
    assert (row.job_id, row.job_name, row.task, row.queue) == (job_id, "copied", "system.sleep",
                                                                "system")
    assert row.params == {"seconds": 1.5}
    assert (row.status, row.trigger, row.triggered_by) == ("queued", "manual", "erin")
    assert row.started_at is None and row.finished_at is None


def test_queue_run_with_a_note_records_a_skipped_run_with_that_note(ctx, make_job):
    job = db.session.get(Job, make_job())
    run = runs.queue_run(job, trigger="misfire", note="Nothing to do.")
    row = stored(run.id)
    assert (row.status, row.error) == ("skipped", "Nothing to do.")
    assert row.finished_at is not None


def test_queue_run_of_an_instant_already_recorded_returns_none_and_keeps_one_row(ctx, make_job):
    job = db.session.get(Job, make_job(max_concurrent="5"))
    instant = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    first = runs.queue_run(job, scheduled_for=instant)
    assert runs.queue_run(db.session.get(Job, job.id), scheduled_for=instant) is None
    rows = list(db.session.scalars(select(JobRun).where(JobRun.job_id == job.id)))
    assert [r.id for r in rows] == [first.id]
    # The session is usable again after the refused insert.
    assert runs.queue_run(db.session.get(Job, job.id), trigger="manual").status == "queued"


def test_last_run_id_points_at_the_latest_run(ctx, make_job):
    job_id = make_job(max_concurrent="1")
    first = runs.queue_run(db.session.get(Job, job_id), trigger="manual")
    assert db.session.get(Job, job_id).last_run_id == first.id
    skipped = runs.queue_run(db.session.get(Job, job_id), trigger="manual")
    assert skipped.status == "skipped"
    db.session.expire_all()
    assert db.session.get(Job, job_id).last_run_id == skipped.id
    runs.execute(first.id)
    third = runs.queue_run(db.session.get(Job, job_id), trigger="manual")
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job.last_run_id == third.id and job.last_run.status == "queued"


# -- claim -----------------------------------------------------------------------------------


def test_claim_marks_a_queued_run_running_once(ctx, make_job):
    run_id = queued(make_job)
    assert runs.claim(run_id, worker="host-a:1/t", attempt=2) is True
    assert runs.claim(run_id, worker="host-b:2/t") is False
    row = stored(run_id)
    assert (row.status, row.worker, row.attempt) == ("running", "host-a:1/t", 2)
    assert row.started_at is not None


def test_claim_of_a_finished_or_missing_run_is_refused(ctx, make_job):
    run_id = queued(make_job)
    runs.execute(run_id)
    assert runs.claim(run_id) is False
    assert stored(run_id).status == "succeeded"
    assert runs.claim(987654) is False


def test_claim_without_a_worker_names_this_process_and_thread(ctx, make_job):
    run_id = queued(make_job)
    runs.claim(run_id)
    assert stored(run_id).worker == runs.worker_name()


# -- execute ---------------------------------------------------------------------------------


def test_execute_records_success_with_result_duration_and_worker(ctx, make_job):
    run_id = queued(make_job, **{"param.seconds": "0.05"})
    before = datetime.now(timezone.utc)
    assert runs.execute(run_id, worker="worker-1") == "succeeded"
    after = datetime.now(timezone.utc)
    row = stored(run_id)
    assert row.status == "succeeded" and row.result == {"slept": 0.05}
    assert row.worker == "worker-1" and row.attempt == 1
    assert before <= row.started <= row.finished <= after
    assert row.duration_ms == int((row.finished_at - row.started_at).total_seconds() * 1000)
    assert row.duration_ms >= 50
    assert row.error is None and row.traceback is None


def test_execute_of_a_run_already_taken_does_not_run_it_again(ctx, make_job):
    run_id = queued(make_job)
    assert runs.execute(run_id) == "succeeded"
    finished = stored(run_id).finished_at
    assert runs.execute(run_id) is None
    assert stored(run_id).finished_at == finished


def test_execute_of_a_failing_task_records_the_error_and_traceback(ctx, make_job):
    run_id = queued(make_job, **FAIL, **{"param.message": "disk on fire"})
    assert runs.execute(run_id) == "failed"
    row = stored(run_id)
    assert row.status == "failed"
    assert row.error == "RuntimeError: disk on fire"
    assert row.traceback.startswith("Traceback (most recent call last):")
    assert "system_tasks.py" in row.traceback
    assert row.traceback.rstrip().endswith("RuntimeError: disk on fire")
    assert row.result is None and row.finished_at is not None and row.duration_ms is not None


def test_execute_of_an_unknown_task_type_fails_with_a_lookup_error(ctx):
    run_id = orphan_run("nope.missing")
    assert runs.execute(run_id) == "failed"
    row = stored(run_id)
    assert row.status == "failed"
    assert row.error == "LookupError: Unknown task type 'nope.missing'"


def test_execute_of_a_run_whose_job_was_deleted_still_runs(ctx):
    run_id = orphan_run("system.sleep", {"seconds": 0})
    assert runs.execute(run_id) == "succeeded"
    assert stored(run_id).job_id is None


def test_execute_of_a_task_given_a_parameter_it_does_not_take_fails(ctx):
    run_id = orphan_run("system.sleep", {"seconds": 0, "colour": "red"})
    assert runs.execute(run_id) == "failed"
    assert stored(run_id).error.startswith("TypeError: ")
    assert "colour" in stored(run_id).error


def test_oversized_result_of_a_task_is_truncated(app, ctx, make_job):
    imports = Path(app.config["ETL_IMPORT_DIR"])
    imports.mkdir(parents=True, exist_ok=True)
    header = [f"a_rather_long_column_name_{i:04d}" for i in range(400)]
    with (imports / "wide.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, [str(i) for i in range(400)]])
    run_id = queued(make_job, task="etl.load_csv", **{"param.seconds": None,
                                                      "param.file": "wide.csv",
                                                      "param.table": "wide"})
    assert runs.execute(run_id) == "succeeded"
    result = stored(run_id).result
    assert result["truncated"] is True
    assert len(result["preview"]) == runs.MAX_RESULT_BYTES
    assert result["preview"].startswith('{"file": "wide.csv", "table": "wide", "rows": 1,')


def test_finish_keeps_a_small_result_and_wraps_a_plain_value(ctx, make_job):
    first, second, third = (queued(make_job) for _ in range(3))
    runs.finish(first, 42)
    runs.finish(second, None)
    runs.finish(third, {"when": datetime(2030, 1, 2, 3, 4, 5), "n": 1})
    assert stored(first).result == {"value": 42}
    assert stored(second).result == {}
    assert stored(third).result == {"when": "2030-01-02 03:04:05", "n": 1}


def test_finish_records_the_artifact_a_result_names(ctx, make_job):
    run_id = queued(make_job)
    runs.finish(run_id, {"artifact": "/somewhere/report.csv", "rows": 3})
    row = stored(run_id)
    assert row.artifact == "/somewhere/report.csv" and row.status == "succeeded"


def test_fail_cuts_a_long_error_message(ctx, make_job):
    run_id = queued(make_job)
    runs.fail(run_id, RuntimeError("x" * 5000))
    row = stored(run_id)
    assert row.status == "failed"
    assert len(row.error) == runs.MAX_ERROR_CHARS and row.error.startswith("RuntimeError: xxx")


@pytest.fixture
def odd_result_task():
    """Register a task type whose result has a tuple key, which JSON cannot hold."""
    name = "system.test_odd_result"

    @registry.task_type(name, queue="system", title="Odd result (test)")
    def odd_result(run):
        """Return a count by (source, target) pair."""
        return {("a", "b"): 1}

    yield name
    registry.load().pop(name, None)


def test_result_that_cannot_be_summarised_still_finishes_the_run(ctx, odd_result_task):
    run_id = orphan_run(odd_result_task)
    outcome = runs.execute(run_id)
    assert outcome in ("succeeded", "failed")
    assert stored(run_id).status == outcome


# -- lost runs -------------------------------------------------------------------------------


def test_mark_lost_marks_only_active_runs_matched_by_the_condition(ctx, make_job):
    job_id = make_job(max_concurrent="10")
    other_id = make_job(max_concurrent="10")
    waiting = queued_run_of(job_id)
    going = queued_run_of(job_id)
    runs.claim(going)
    done = queued_run_of(job_id)
    runs.execute(done)
    elsewhere = queued_run_of(other_id)
    assert runs.mark_lost(JobRun.job_id == job_id, "The worker died.") == 2
    for run_id in (waiting, going):
        row = stored(run_id)
        assert (row.status, row.error) == ("lost", "The worker died.")
        assert row.finished_at is not None
    assert stored(done).status == "succeeded"
    assert stored(elsewhere).status == "queued"
    assert runs.mark_lost(JobRun.job_id == job_id, "again") == 0


def queued_run_of(job_id: int) -> int:
    """Queue a manual run of an existing job; return its id."""
    return runs.queue_run(db.session.get(Job, job_id), trigger="manual").id


def test_fail_with_status_lost_records_the_reason(ctx, make_job):
    run_id = queued(make_job)
    runs.claim(run_id)
    runs.fail(run_id, TimeoutError("no heartbeat for 60s"), status="lost")
    row = stored(run_id)
    assert (row.status, row.error) == ("lost", "TimeoutError: no heartbeat for 60s")
    assert row.duration_ms is not None and from_db(row.finished_at) >= row.started
    assert row.finished - row.started < timedelta(minutes=1)
