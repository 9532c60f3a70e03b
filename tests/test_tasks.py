"""The built-in task types doing real work, and the registry that declares them.

Tasks run through tasks.runs.execute on a queued run (or are called with a RunContext):
HTTP GET against a real local HTTP server, CSV files on disk, a real SQLite ETL database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, table, text

from tasks import registry, runs
from tasks.registry import Param, ParamErrors, TaskType
from tasks.runs import RunContext
from tests.support import free_port
from webapp.extensions import db
from webapp.models import Job, JobRun
from webapp.models.clock import utcnow


@pytest.fixture
def ctx(app):
    """Run the test inside an app context."""
    with app.app_context():
        yield


# -- helpers ---------------------------------------------------------------------------------


def queue(make_job, task: str, **params) -> int:
    """Create a job of the task type with these parameters, queue a run of it; return its id."""
    fields = {"task": task, "param.seconds": None}
    fields.update({f"param.{k}": str(v) for k, v in params.items()})
    job = db.session.get(Job, make_job(**fields))
    return runs.queue_run(job, trigger="manual", by="admin").id


def run_task(make_job, task: str, **params) -> JobRun:
    """Queue a run of the task type, execute it here, and return the stored run."""
    run_id = queue(make_job, task, **params)
    runs.execute(run_id)
    return stored(run_id)


def stored(run_id: int) -> JobRun:
    """Return the run as stored, not as cached by the session."""
    db.session.expire_all()
    return db.session.get(JobRun, run_id)


def context(run_id: int = 1) -> RunContext:
    """Return the context a task function receives."""
    return RunContext(run_id=run_id, job_id=None, job_name="direct", attempt=1,
                      log=logging.getLogger("test"))


def add_run(queued_ago: timedelta = timedelta(0), **values) -> int:
    """Store a run queued some time ago and return its id."""
    values.setdefault("status", "succeeded")
    run = JobRun(job_name=values.pop("job_name", "history"), task="system.sleep",
                 queue="system", params={}, queued_at=utcnow() - queued_ago, **values)
    db.session.add(run)
    db.session.commit()
    return run.id


# -- collect.http_get ------------------------------------------------------------------------

BODY = b"The quick brown fox jumps over the lazy dog.\n" * 3
LARGE = bytes(range(256)) * 1000  # 256 000 bytes: several read chunks


class Handler(BaseHTTPRequestHandler):
    """Serve fixed bytes at a few paths."""

    routes = {
        "/data.txt": (200, "text/plain; charset=utf-8", BODY),
        "/large.bin": (200, "application/octet-stream", LARGE),
        "/missing": (404, "text/plain", b"not here"),
    }

    def do_GET(self):
        status, content_type, body = self.routes.get(self.path, (404, "text/plain", b"?"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Keep the test output quiet."""


@pytest.fixture
def server(monkeypatch):
    """Serve Handler on a free loopback port in a thread; return its base URL."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def test_http_get_records_status_size_and_checksum(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/data.txt")
    assert run.status == "succeeded", run.error
    assert run.result["url"] == f"{server}/data.txt"
    assert run.result["status"] == 200
    assert run.result["bytes"] == len(BODY)
    assert run.result["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert run.result["content_type"] == "text/plain; charset=utf-8"
    assert run.result["seconds"] >= 0


def test_http_get_of_a_body_larger_than_one_chunk_checksums_all_of_it(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/large.bin")
    assert run.status == "succeeded", run.error
    assert run.result["bytes"] == len(LARGE) == 256_000
    assert run.result["sha256"] == hashlib.sha256(LARGE).hexdigest()


def test_http_get_of_an_unexpected_status_fails_with_a_clear_message(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/missing")
    assert run.status == "failed"
    assert run.error == f"RuntimeError: {server}/missing answered HTTP 404, expected 200."


def test_http_get_expecting_404_succeeds_on_a_404(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/missing", expect_status=404)
    assert run.status == "succeeded", run.error
    assert run.result["status"] == 404
    assert run.result["sha256"] == hashlib.sha256(b"not here").hexdigest()


def test_http_get_expecting_another_status_fails_on_a_200(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/data.txt", expect_status=204)
    assert run.status == "failed"
    assert run.error.endswith("answered HTTP 200, expected 204.")


def test_http_get_over_max_bytes_fails(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/data.txt",
                   max_bytes=len(BODY) - 1)
    assert run.status == "failed"
    assert run.error == f"ValueError: The response is larger than {len(BODY) - 1} bytes."
    assert run.result is None


def test_http_get_of_exactly_max_bytes_succeeds(ctx, make_job, server):
    run = run_task(make_job, "collect.http_get", url=f"{server}/data.txt", max_bytes=len(BODY))
    assert run.status == "succeeded", run.error
    assert run.result["bytes"] == len(BODY)


def test_http_get_of_a_closed_port_fails_with_the_connection_error(ctx, make_job):
    run = run_task(make_job, "collect.http_get", url=f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert run.status == "failed"
    assert run.error.startswith("URLError: ")
    assert "refused" in run.error.lower()


# -- report.runs_csv -------------------------------------------------------------------------


def csv_rows(data: str) -> list[list[str]]:
    """Return the records of CSV text."""
    return list(csv.reader(io.StringIO(data)))


def test_runs_csv_writes_one_line_per_run_of_the_period_under_artifact_dir(app, ctx, make_job):
    recent_ok = add_run(timedelta(days=1), job_name="fetch", status="succeeded")
    recent_bad = add_run(timedelta(hours=2), job_name="load", status="failed",
                         error="ValueError: bad, with a comma\nand a second line")
    add_run(timedelta(days=8), job_name="too old", status="succeeded")
    run = run_task(make_job, "report.runs_csv", days=7)
    assert run.status == "succeeded", run.error
    path = Path(run.artifact)
    artifacts = Path(app.config["ARTIFACT_DIR"]).resolve()
    assert path.resolve().parent == artifacts / str(run.id)
    assert path.name == "runs-7d.csv"
    rows = csv_rows(path.read_text())
    assert rows[0] == ["id", "job_name", "task", "queue", "status", "trigger", "queued_at",
                       "started_at", "finished_at", "duration_ms", "attempt", "worker", "error"]
    assert [(r[0], r[1], r[4]) for r in rows[1:]] == [
        (str(recent_ok), "fetch", "succeeded"),
        (str(recent_bad), "load", "failed"),
    ]
    assert rows[2][12] == "ValueError: bad, with a comma\nand a second line"
    assert run.result["rows"] == 2
    assert run.result["by_status"] == {"succeeded": 1, "failed": 1}


def test_runs_csv_can_keep_only_one_status(ctx, make_job):
    add_run(job_name="a", status="succeeded")
    failed = add_run(job_name="b", status="failed")
    add_run(job_name="c", status="skipped")
    run = run_task(make_job, "report.runs_csv", days=1, status="failed")
    rows = csv_rows(Path(run.artifact).read_text())
    assert [r[0] for r in rows[1:]] == [str(failed)]
    assert run.result == {"rows": 1, "by_status": {"failed": 1}, "days": 1,
                          "artifact": run.artifact}


def test_runs_csv_is_served_for_download_by_the_admin(app, client, auth, make_job):
    with app.app_context():
        add_run(job_name="nightly")
        add_run(job_name="hourly")
        run = run_task(make_job, "report.runs_csv", days=30)
        on_disk = Path(run.artifact).read_bytes()
        run_id = run.id
    auth.login()
    with client.get(f"/runs/{run_id}/artifact") as response:
        assert response.status_code == 200
        assert response.data == on_disk
        assert "runs-30d.csv" in response.headers["Content-Disposition"]
        served = response.get_data(as_text=True)
    assert [r[1] for r in csv_rows(served)[1:]] == ["nightly", "hourly"]


# -- etl.load_csv ----------------------------------------------------------------------------


@pytest.fixture
def imports(app) -> Path:
    """Return the ETL import folder, created."""
    folder = Path(app.config["ETL_IMPORT_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def etl(app):
    """Return an engine on the ETL database."""
    engine = create_engine(app.config["ETL_DATABASE_URL"])
    yield engine
    engine.dispose()


def table_rows(engine, name: str) -> list[tuple]:
    """Return every row of a table of the ETL database, in insertion order."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{name}" ORDER BY rowid'))]


def row_count(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table(name))).scalar_one()


PEOPLE = "id,name,city\n1,Ada,London\n2,Grace,New York\n3,Linus,Helsinki\n"


def test_load_csv_loads_the_rows_into_a_new_table(ctx, make_job, imports, etl):
    (imports / "people.csv").write_text(PEOPLE)
    run = run_task(make_job, "etl.load_csv", file="people.csv", table="people")
    assert run.status == "succeeded", run.error
    assert run.result == {"file": "people.csv", "table": "people", "rows": 3,
                          "columns": ["id", "name", "city"], "mode": "append"}
    assert row_count(etl, "people") == 3
    assert table_rows(etl, "people") == [("1", "Ada", "London"), ("2", "Grace", "New York"),
                                         ("3", "Linus", "Helsinki")]


def test_load_csv_in_append_mode_adds_to_the_table(ctx, make_job, imports, etl):
    (imports / "people.csv").write_text(PEOPLE)
    for _ in range(2):
        run = run_task(make_job, "etl.load_csv", file="people.csv", table="people", mode="append")
        assert run.status == "succeeded", run.error
    assert row_count(etl, "people") == 6


def test_load_csv_in_replace_mode_starts_the_table_afresh(ctx, make_job, imports, etl):
    (imports / "people.csv").write_text(PEOPLE)
    run_task(make_job, "etl.load_csv", file="people.csv", table="people")
    (imports / "cities.csv").write_text("city;country\nOslo;Norway\n")
    run = run_task(make_job, "etl.load_csv", file="cities.csv", table="people", mode="replace",
                   delimiter=";")
    assert run.status == "succeeded", run.error
    assert table_rows(etl, "people") == [("Oslo", "Norway")]
    assert [c["name"] for c in inspect(etl).get_columns("people")] == ["city", "country"]


def test_load_csv_of_more_rows_than_one_batch_loads_them_all(ctx, make_job, imports, etl):
    lines = ["n,square"] + [f"{i},{i * i}" for i in range(2500)]
    (imports / "squares.csv").write_text("\n".join(lines) + "\n")
    run = run_task(make_job, "etl.load_csv", file="squares.csv", table="squares")
    assert run.result["rows"] == 2500
    assert row_count(etl, "squares") == 2500
    assert table_rows(etl, "squares")[-1] == ("2499", str(2499 * 2499))


def test_load_csv_refuses_a_path_outside_the_import_folder(ctx, make_job, imports, etl):
    (imports.parent / "x.csv").write_text(PEOPLE)
    run = run_task(make_job, "etl.load_csv", file="../x.csv", table="people")
    assert run.status == "failed"
    assert run.error.startswith("PermissionError: '../x.csv' is outside the import folder")
    assert not inspect(etl).has_table("people")


def test_load_csv_refuses_an_absolute_path(ctx, make_job, imports):
    outside = imports.parent / "x.csv"
    outside.write_text(PEOPLE)
    run = run_task(make_job, "etl.load_csv", file=str(outside.resolve()), table="people")
    assert run.status == "failed" and run.error.startswith("PermissionError: ")


def test_load_csv_refuses_an_invalid_table_name(ctx, make_job, imports, etl):
    (imports / "people.csv").write_text(PEOPLE)
    run = run_task(make_job, "etl.load_csv", file="people.csv", table="people; DROP TABLE x")
    assert run.status == "failed"
    assert run.error == "ValueError: 'people; DROP TABLE x' is not a valid table name."
    assert inspect(etl).get_table_names() == []


def test_load_csv_of_a_missing_file_says_so(ctx, make_job, imports):
    run = run_task(make_job, "etl.load_csv", file="nothing.csv", table="people")
    assert run.status == "failed"
    assert run.error.startswith("FileNotFoundError: No file 'nothing.csv' in the import folder")


def test_load_csv_of_an_empty_file_says_so(ctx, make_job, imports, etl):
    (imports / "empty.csv").write_text("")
    run = run_task(make_job, "etl.load_csv", file="empty.csv", table="people")
    assert run.status == "failed"
    assert run.error == "ValueError: empty.csv is empty."


def test_load_csv_skips_a_blank_line_after_the_header(ctx, make_job, imports, etl):
    (imports / "gappy.csv").write_text("id,name\n\n1,Ada\n2,Grace\n")
    run = run_task(make_job, "etl.load_csv", file="gappy.csv", table="gappy")
    assert run.status == "succeeded", run.error
    assert table_rows(etl, "gappy") == [("1", "Ada"), ("2", "Grace")]


def test_load_csv_skips_a_trailing_blank_line(ctx, make_job, imports, etl):
    (imports / "trailing.csv").write_text("id,name\n1,Ada\n2,Grace\n\n")
    run = run_task(make_job, "etl.load_csv", file="trailing.csv", table="trailing")
    assert run.status == "succeeded", run.error
    assert table_rows(etl, "trailing") == [("1", "Ada"), ("2", "Grace")]


def test_load_csv_fills_the_missing_fields_of_a_short_row_with_null(ctx, make_job, imports, etl):
    (imports / "short.csv").write_text("id,name,city\n1,Ada,London\n2,Grace\n")
    run = run_task(make_job, "etl.load_csv", file="short.csv", table="short")
    assert run.status == "succeeded", run.error
    assert table_rows(etl, "short") == [("1", "Ada", "London"), ("2", "Grace", None)]


# -- system.prune_runs -----------------------------------------------------------------------


def test_prune_runs_deletes_old_finished_runs_and_their_files(app, ctx, make_job):
    old_finished = [add_run(timedelta(days=40), status=s)
                    for s in ("succeeded", "failed", "skipped", "lost")]
    old_active = [add_run(timedelta(days=40), status=s) for s in ("queued", "running")]
    recent = add_run(timedelta(days=29), status="succeeded")
    artifacts = Path(app.config["ARTIFACT_DIR"])
    for run_id in (old_finished[0], recent):
        (artifacts / str(run_id)).mkdir(parents=True)
        (artifacts / str(run_id) / "report.csv").write_text("id\n")
    run = run_task(make_job, "system.prune_runs", days=30)
    assert run.status == "succeeded", run.error
    assert run.result == {"deleted": 4, "older_than_days": 30}
    remaining = set(db.session.scalars(select(JobRun.id)))
    assert remaining == {*old_active, recent, run.id}
    assert not (artifacts / str(old_finished[0])).exists()
    assert (artifacts / str(recent) / "report.csv").is_file()


def test_prune_runs_clears_the_last_run_of_a_job_whose_run_was_pruned(ctx, make_job):
    job_id = make_job(name="rare")
    old = runs.queue_run(db.session.get(Job, job_id), trigger="manual")
    runs.execute(old.id)
    db.session.get(JobRun, old.id).queued_at = utcnow() - timedelta(days=100)
    db.session.commit()
    run = run_task(make_job, "system.prune_runs", days=30)
    assert run.result["deleted"] == 1
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job.last_run_id is None and job.last_run is None


def test_prune_runs_of_a_large_backlog_deletes_it_all(ctx, make_job):
    backlog = 250_001
    db.session.execute(
        text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
            "INSERT INTO job_runs (job_name, task, queue, params, status, \"trigger\", queued_at, "
            "attempt) SELECT 'old', 'system.sleep', 'system', '{}', 'succeeded', 'schedule', "
            ":queued_at, 1 FROM n"
        ),
        {"count": backlog, "queued_at": utcnow() - timedelta(days=400)},
    )
    db.session.commit()
    run = run_task(make_job, "system.prune_runs", days=30)
    assert run.status == "succeeded", run.error
    assert run.result["deleted"] == backlog


# -- system.fail and system.sleep ------------------------------------------------------------


def test_system_fail_fails_with_its_message(ctx, make_job):
    run = run_task(make_job, "system.fail", message="Testing alerts")
    assert (run.status, run.error) == ("failed", "RuntimeError: Testing alerts")


def test_system_fail_has_a_default_message(ctx, make_job):
    run = run_task(make_job, "system.fail")
    assert run.error == "RuntimeError: Failing on purpose"


def test_system_sleep_waits_and_succeeds(ctx, make_job):
    run = run_task(make_job, "system.sleep", seconds=0.1)
    assert (run.status, run.result) == ("succeeded", {"slept": 0.1})
    assert run.duration_ms >= 100


def test_system_sleep_called_directly_waits_that_long(ctx):
    sleep = registry.get("system.sleep").func
    started = time.monotonic()
    assert sleep(context(), seconds=0.05) == {"slept": 0.05}
    assert time.monotonic() - started >= 0.05


def test_run_context_artifact_path_stays_in_the_run_folder(app, ctx):
    path = context(run_id=77).artifact_path("../../escape.txt")
    assert path == Path(app.config["ARTIFACT_DIR"]) / "77" / "escape.txt"
    assert path.parent.is_dir()


# -- registry: parameters --------------------------------------------------------------------


def parse_error(param: Param, raw) -> str:
    """Return the message a parameter gives for a refused value."""
    with pytest.raises(ValueError) as caught:
        param.parse(raw)
    return str(caught.value)


@pytest.mark.parametrize("raw, value", [("42", 42), (" 7 ", 7), (5, 5), (4.0, 4), ("1", 1),
                                        ("600", 600)])
def test_int_param_accepts_whole_numbers_within_bounds(raw, value):
    parsed = Param("n", "int", min=1, max=600).parse(raw)
    assert parsed == value and type(parsed) is int


@pytest.mark.parametrize("raw, message", [
    ("0", "At least 1."),
    ("601", "At most 600."),
    ("4.5", "Give a whole number."),
    (4.5, "Give a whole number."),
    ("ten", "Give a whole number."),
    ("nan", "Give a whole number."),
    (float("nan"), "Give a whole number."),
    (True, "Give a number."),
    ([1], "Give a whole number."),
])
def test_int_param_refuses_other_values(raw, message):
    assert parse_error(Param("n", "int", min=1, max=600), raw) == message


@pytest.mark.parametrize("raw, value", [("2.5", 2.5), (3, 3.0), ("1e2", 100.0), ("0", 0.0)])
def test_float_param_accepts_finite_numbers(raw, value):
    parsed = Param("x", "float", min=0, max=100).parse(raw)
    assert parsed == value and isinstance(parsed, float)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", float("nan"), float("inf"),
                                 "1e999"])
def test_float_param_refuses_nan_and_infinity(raw):
    assert parse_error(Param("x", "float"), raw) == "Give a number."


def test_float_param_bounds():
    param = Param("x", "float", min=0.5, max=2.5)
    assert parse_error(param, "0.4") == "At least 0.5."
    assert parse_error(param, "2.6") == "At most 2.5."


def test_int_param_refuses_infinity_from_json():
    assert parse_error(Param("n", "int"), json.loads("Infinity")) == "Give a whole number."


def test_float_param_refuses_an_integer_too_large_for_a_float():
    assert parse_error(Param("x", "float"), json.loads("1" + "0" * 400)) == "Give a number."


@pytest.mark.parametrize("raw, value", [
    ("on", True), ("true", True), ("YES", True), ("1", True), ("y", True), (True, True),
    ("off", False), ("false", False), ("0", False), ("", False), (None, False), (False, False),
])
def test_bool_param(raw, value):
    assert Param("flag", "bool").parse(raw) is value


def test_required_bool_param_unticked_is_false_not_an_error():
    assert Param("flag", "bool", required=True).parse(None) is False


def test_choice_param():
    param = Param("mode", "choice", default="append", choices=("append", "replace"))
    assert param.parse("replace") == "replace"
    assert param.parse("") == "append"
    assert parse_error(param, "merge") == "Choose one of: append, replace."
    assert parse_error(param, "Replace") == "Choose one of: append, replace."


@pytest.mark.parametrize("raw", ["http://example.com/", "https://example.com/a?b=c",
                                 "HTTPS://EXAMPLE.COM", "  https://example.com/  "])
def test_url_param_accepts_http_and_https(raw):
    assert Param("url", "url").parse(raw) == raw.strip()


@pytest.mark.parametrize("raw", ["ftp://example.com/", "file:///etc/passwd", "example.com",
                                 "javascript:alert(1)"])
def test_url_param_refuses_other_schemes(raw):
    assert parse_error(Param("url", "url"), raw) == "Give an http:// or https:// address."


def test_str_param_max_length_counts_the_stripped_text():
    param = Param("s", "str", max_length=5)
    assert param.parse("  abcde  ") == "abcde"
    assert parse_error(param, "abcdef") == "At most 5 characters."


def test_text_param_keeps_whitespace_and_counts_it():
    param = Param("t", "text", max_length=5)
    assert param.parse(" ab ") == " ab "
    assert parse_error(param, " abcd ") == "At most 5 characters."


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_required_param_refuses_a_missing_value(raw):
    assert parse_error(Param("s", "str", required=True), raw) == "This field is required."


def test_optional_param_takes_its_default_when_missing():
    assert Param("n", "int", default=30).parse("") == 30
    assert Param("s", "str").parse(None) is None


def test_param_of_an_unknown_type_is_refused_when_declared():
    with pytest.raises(ValueError, match="unknown parameter type 'date'"):
        Param("when", "date")


def test_param_label_defaults_to_its_name_in_words():
    assert Param("max_bytes").label == "Max bytes"
    assert Param("max_bytes", label="Limit").label == "Limit"


# -- registry: task types --------------------------------------------------------------------


def test_validate_params_fills_defaults_and_converts_types():
    task = registry.get("collect.http_get")
    assert task.validate_params({"url": "https://example.com/", "timeout": "5"}) == {
        "url": "https://example.com/", "timeout": 5, "max_bytes": 50_000_000,
        "expect_status": 200}


def test_validate_params_refuses_unknown_keys_and_names_every_bad_one():
    task = registry.get("collect.http_get")
    with pytest.raises(ParamErrors) as caught:
        task.validate_params({"url": "gopher://x", "timeout": "0", "colour": "red"})
    assert caught.value.errors == {"colour": "Unknown parameter.",
                                   "url": "Give an http:// or https:// address.",
                                   "timeout": "At least 1."}


def big_task() -> TaskType:
    """Return an unregistered task type whose one parameter may be very long."""
    return TaskType(name="test.big", func=lambda run, body: None, queue="system", title="Big",
                    params=(Param("body", "text", max_length=100_000),))


def test_validate_params_refuses_parameters_over_16_kib():
    overhead = len(json.dumps({"body": ""}))
    fits = "x" * (registry.MAX_PARAMS_BYTES - overhead)
    assert big_task().validate_params({"body": fits}) == {"body": fits}
    with pytest.raises(ParamErrors) as caught:
        big_task().validate_params({"body": fits + "x"})
    assert caught.value.errors == {"params": "The parameters are larger than 16 KiB."}


def test_task_type_refuses_an_unknown_queue_and_registers_nothing():
    with pytest.raises(ValueError, match="queue must be one of"):
        @registry.task_type("test.elsewhere", queue="gpu", title="Elsewhere")
        def elsewhere(run):
            """Never registered."""
    assert registry.get("test.elsewhere") is None


def test_every_built_in_declares_one_of_the_four_queues():
    builtins = {t.name: t for t in registry.all_types() if not t.name.startswith("test.")}
    assert {"collect.http_get", "report.runs_csv", "etl.load_csv", "system.prune_runs",
            "system.sleep", "system.fail"} <= set(builtins)
    assert all(t.queue in registry.QUEUES for t in builtins.values())
    assert {t.queue for t in builtins.values()} == set(registry.QUEUES) == {
        "collect", "report", "etl", "system"}


def test_all_types_are_sorted_by_queue_then_name():
    types = registry.all_types()
    keys = [(registry.QUEUES.index(t.queue), t.name) for t in types]
    assert keys == sorted(keys)


def test_every_built_in_has_a_title_a_description_and_valid_defaults():
    for task in registry.all_types():
        assert task.title and task.description, task.name
        required = {p.name: "https://example.com/" if p.type == "url" else "x"
                    for p in task.params if p.required}
        values = task.validate_params(required)
        assert set(values) == {p.name for p in task.params}
        for param in task.params:
            if isinstance(param.default, float):
                assert math.isfinite(param.default)


def test_unknown_task_type_is_none():
    assert registry.get("nope.nothing") is None
