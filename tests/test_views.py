"""What a user sees through every page and HTMX partial of the admin, via the Flask test client."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.support import job_fields
from tasks import runs as run_recorder
from webapp.extensions import db
from webapp.models import AuditEvent, Job, JobRun
from webapp.models.clock import from_db, utcnow
from webapp.services import jobs as job_service
from webapp.services import jobspec

HX = {"HX-Request": "true"}


# -- helpers ---------------------------------------------------------------------------------


def text(response) -> str:
    """Return the response body with HTML entities decoded, as a reader would see it."""
    return html.unescape(response.get_data(as_text=True))


def body(response) -> str:
    """Return the raw response body."""
    return response.get_data(as_text=True)


def job_count(app) -> int:
    """Return how many jobs are stored."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Job))


def load_job(app, job_id: int) -> Job | None:
    """Return a detached copy of a job row (columns loaded), or None."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        if job is not None:
            db.session.expunge(job)
        return job


def load_runs(app, **where) -> list[JobRun]:
    """Return detached run rows matching column values, oldest first."""
    with app.app_context():
        query = select(JobRun).order_by(JobRun.id)
        for column, value in where.items():
            query = query.where(getattr(JobRun, column) == value)
        rows = db.session.scalars(query).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def audit_actions(app) -> list[tuple[str, str, str]]:
    """Return (username, action, target name) of every audit event, oldest first."""
    with app.app_context():
        return [(e.username, e.action, e.target_name)
                for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def add_run(app, job_id: int | None = None, **values) -> int:
    """Store a run row directly and return its id."""
    with app.app_context():
        job = db.session.get(Job, job_id) if job_id else None
        run = JobRun(
            job_id=job_id,
            job_name=values.pop("job_name", job.name if job else "gone job"),
            task=values.pop("task", job.task if job else "system.sleep"),
            queue=values.pop("queue", job.queue if job else "system"),
            params=values.pop("params", {}),
            **values,
        )
        db.session.add(run)
        db.session.commit()
        return run.id


def job_rows(response) -> list[str]:
    """Return the ids of the job rows in a page or fragment, as 'job-N'."""
    return re.findall(r'<tr id="(job-\d+)"', body(response))


def now() -> datetime:
    return datetime.now(timezone.utc)


# Overrides of job_fields() that make an HTTP GET job (None drops the sleep parameter).
HTTP_GET = {"task": "collect.http_get", "param.seconds": None, "param.url": "https://example.com/"}


def http_get_fields(**overrides) -> dict:
    """Return valid form fields of an HTTP GET job."""
    return job_fields(**{**HTTP_GET, **overrides})


# -- logging in ---------------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/jobs/")
    assert response.status_code == 302
    assert response.location == "/auth/login?next=%2Fjobs%2F"
    page = client.get(response.location)
    assert page.status_code == 200
    assert "Log in to see the scheduler." in text(page)
    assert 'name="password"' in body(page)


def test_anonymous_visitor_cannot_read_runs_audit_or_workers(client):
    for path in ("/runs/", "/audit/", "/workers/", "/jobs/new", "/runs/1"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.location.startswith("/auth/login"), path


def test_root_leads_to_the_jobs_page(client, auth):
    auth.login()
    response = client.get("/")
    assert response.status_code == 302
    assert response.location == "/jobs/"


def test_admin_logs_in_and_lands_on_the_jobs_page(client, auth):
    response = auth.login()
    assert response.status_code == 302
    assert response.location == "/jobs/"
    page = client.get("/jobs/")
    assert page.status_code == 200
    assert "Log out admin" in text(page)


def test_wrong_password_shows_an_error_and_logs_nobody_in(client, auth):
    response = client.post("/auth/login", data={"username": "admin", "password": "not-the-password",
                                                "csrf_token": auth.csrf_token()})
    assert response.status_code == 401
    assert "Wrong user name or password." in text(response)
    assert 'value="admin"' in body(response)  # the name is kept, the password is not
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert client.get("/jobs/").status_code == 302


def test_unknown_user_gets_the_same_error_as_a_wrong_password(client, auth):
    response = client.post("/auth/login", data={"username": "admin", "password": "x",
                                                "csrf_token": auth.csrf_token()})
    unknown = client.post("/auth/login", data={"username": "nobody", "password": "x",
                                               "csrf_token": auth.csrf_token()})
    assert unknown.status_code == 401
    assert "Wrong user name or password." in text(unknown)
    assert response.status_code == 401


def test_login_page_sends_a_logged_in_user_to_the_jobs(client, auth):
    auth.login()
    response = client.get("/auth/login")
    assert response.status_code == 302
    assert response.location == "/jobs/"


def test_logout_ends_the_session(client, auth):
    auth.login()
    response = auth.logout()
    assert response.status_code == 302
    assert response.location == "/auth/login"
    assert "You are logged out." in text(client.get("/auth/login"))
    assert client.get("/jobs/").status_code == 302
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_logout_is_not_a_link_anyone_can_trigger_with_get(client, auth):
    auth.login()
    assert client.get("/auth/logout").status_code == 405
    assert client.get("/jobs/").status_code == 200


def test_login_follows_a_local_next_page(client, auth):
    token = auth.csrf_token()
    response = client.post("/auth/login?next=/runs/?status=failed",
                           data={"username": "admin", "password": "admin-password", "csrf_token": token})
    assert response.status_code == 302
    assert response.location == "/runs/?status=failed"


@pytest.mark.parametrize("target", [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
])
def test_login_next_cannot_send_the_user_to_another_site(client, auth, target):
    token = auth.csrf_token()
    response = client.post("/auth/login", query_string={"next": target},
                           data={"username": "admin", "password": "admin-password", "csrf_token": token})
    assert response.status_code == 302
    location = response.location
    assert urlsplit(location).netloc == ""
    assert urlsplit(location).scheme == ""
    assert location.startswith("/")
    assert not location.startswith(("//", "/\\"))


# -- CSRF --------------------------------------------------------------------------------------


@pytest.fixture
def tokenless(client, auth):
    """Return the admin's client, logged in but no longer sending the CSRF header."""
    auth.login()
    del client.environ_base["HTTP_X_CSRFTOKEN"]
    return client


def test_creating_a_job_without_the_csrf_token_is_refused(app, tokenless):
    response = tokenless.post("/jobs/new", data=job_fields(name="forged"))
    assert response.status_code == 400
    assert "lacks its security token" in text(response)
    assert "reload the page" in text(response)
    assert job_count(app) == 0


def test_pausing_without_the_csrf_token_is_refused(app, make_job, tokenless):
    job_id = make_job()
    response = tokenless.post(f"/jobs/{job_id}/pause", headers=HX)
    assert response.status_code == 400
    assert "security token" in text(response)
    # The message goes to the messages area in place, not into the row.
    assert response.headers["HX-Retarget"] == "#messages"
    assert "<html" not in body(response)
    job = load_job(app, job_id)
    assert not job.paused
    assert job.next_run_at is not None


def test_deleting_with_a_wrong_csrf_token_is_refused(app, make_job, client, auth):
    job_id = make_job()
    auth.login()
    client.environ_base["HTTP_X_CSRFTOKEN"] = "forged-token"
    response = client.post(f"/jobs/{job_id}/delete")
    assert response.status_code == 400
    assert load_job(app, job_id) is not None


def test_login_without_the_csrf_token_is_refused(client):
    response = client.post("/auth/login", data={"username": "admin", "password": "admin-password"})
    assert response.status_code == 400
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_a_plain_form_with_its_hidden_token_works_without_javascript(app, make_job, tokenless):
    job_id = make_job()
    page = tokenless.get(f"/jobs/{job_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', body(page)).group(1)
    response = tokenless.post(f"/jobs/{job_id}/pause",
                              data={"csrf_token": token, "next": f"/jobs/{job_id}"})
    assert response.status_code == 303
    assert load_job(app, job_id).paused


# -- viewer role -----------------------------------------------------------------------------


def test_admin_sees_the_action_buttons(client, auth, make_job):
    make_job(name="nightly")
    auth.login("admin")
    page = text(client.get("/jobs/"))
    for label in (">New job<", ">Pause<", ">Run now<", ">Edit<", ">Delete<"):
        assert label in page


def test_viewer_sees_the_jobs_without_any_action_button(client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login("viewer")
    response = client.get("/jobs/")
    assert response.status_code == 200
    page = text(response)
    assert "nightly" in page
    for label in (">New job<", ">Pause<", ">Resume<", ">Run now<", ">Edit<", ">Delete<", "Actions"):
        assert label not in page
    detail = text(client.get(f"/jobs/{job_id}"))
    assert "nightly" in detail
    for label in (">Pause<", ">Run now<", ">Edit<", ">Delete<"):
        assert label not in detail


@pytest.mark.parametrize("action", ["pause", "run", "delete", "edit"])
def test_viewer_cannot_change_a_job(app, client, auth, make_job, action):
    job_id = make_job(name="nightly")
    before = load_job(app, job_id)
    auth.login("viewer")
    data = job_fields(name="renamed", every="1", every_unit="days") if action == "edit" else {}
    response = client.post(f"/jobs/{job_id}/{action}", data=data)
    assert response.status_code == 403
    assert "Your account can view jobs but not change them." in text(response)
    after = load_job(app, job_id)
    assert after is not None
    assert (after.name, after.paused, after.next_run_at, after.every_seconds) == (
        before.name, before.paused, before.next_run_at, before.every_seconds)
    assert load_runs(app) == []
    assert [a for a in audit_actions(app) if a[0] == "viewer"] == []


def test_viewer_cannot_resume_a_paused_job(app, client, auth, make_job):
    job_id = make_job(enabled=None)
    auth.login("viewer")
    response = client.post(f"/jobs/{job_id}/resume", headers=HX)
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#messages"
    assert "can view jobs but not change them" in text(response)
    assert load_job(app, job_id).paused


def test_viewer_cannot_create_a_job(app, client, auth):
    auth.login("viewer")
    assert client.get("/jobs/new").status_code == 403
    response = client.post("/jobs/new", data=job_fields(name="by a viewer"))
    assert response.status_code == 403
    assert job_count(app) == 0


def test_viewer_cannot_open_the_edit_or_delete_pages(client, auth, make_job):
    job_id = make_job()
    auth.login("viewer")
    assert client.get(f"/jobs/{job_id}/edit").status_code == 403
    assert client.get(f"/jobs/{job_id}/delete").status_code == 403


def test_viewer_can_read_runs_audit_and_workers(client, auth, make_job):
    make_job()
    auth.login("viewer")
    for path in ("/runs/", "/audit/", "/workers/"):
        assert client.get(path).status_code == 200, path


# -- jobs list --------------------------------------------------------------------------------


def test_jobs_page_is_a_full_page(client, auth, make_job):
    make_job(name="nightly")
    auth.login()
    response = client.get("/jobs/")
    assert response.status_code == 200
    assert "<html" in body(response)
    assert 'id="jobs-table"' in body(response)
    assert "HX-Request" in response.headers["Vary"]


def test_jobs_list_htmx_request_returns_only_the_table(client, auth, make_job):
    make_job(name="nightly")
    auth.login()
    response = client.get("/jobs/", headers=HX)
    assert response.status_code == 200
    html_text = body(response)
    assert "<html" not in html_text
    assert html_text.lstrip().startswith('<div id="jobs-table"')
    assert "nightly" in html_text
    assert 'id="job-filters"' not in html_text
    assert "HX-Request" in response.headers["Vary"]


def test_boosted_htmx_navigation_gets_the_full_page(client, auth):
    auth.login()
    response = client.get("/jobs/", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in body(response)


def test_empty_jobs_list_invites_to_create_one(client, auth):
    auth.login()
    page = text(client.get("/jobs/"))
    assert "No jobs yet." in page
    assert "Create the first one." in page


def test_search_by_name_filters_the_jobs(client, auth, make_job):
    wanted = make_job(name="Nightly backup")
    other = make_job(name="Hourly ping")
    auth.login()
    response = client.get("/jobs/", query_string={"q": "night"}, headers=HX)
    assert job_rows(response) == [f"job-{wanted}"]
    assert f"job-{other}" not in body(response)


def test_search_treats_wildcards_literally(client, auth, make_job):
    make_job(name="Nightly backup")
    percent = make_job(name="100% done")
    auth.login()
    assert job_rows(client.get("/jobs/", query_string={"q": "%"}, headers=HX)) == [f"job-{percent}"]
    assert job_rows(client.get("/jobs/", query_string={"q": "_"}, headers=HX)) == []


def test_search_without_a_match_says_so(client, auth, make_job):
    make_job(name="Nightly backup")
    auth.login()
    response = client.get("/jobs/", query_string={"q": "zzz"})
    assert job_rows(response) == []
    assert "No job matches these filters." in text(response)


def test_filter_by_task_type(client, auth, make_job):
    sleeper = make_job(name="sleeper")
    getter = make_job(name="getter", **HTTP_GET)
    auth.login()
    response = client.get("/jobs/", query_string={"task": "collect.http_get"}, headers=HX)
    assert job_rows(response) == [f"job-{getter}"]
    response = client.get("/jobs/", query_string={"task": "system.sleep"}, headers=HX)
    assert job_rows(response) == [f"job-{sleeper}"]


def test_filter_by_queue(client, auth, make_job):
    make_job(name="sleeper")
    getter = make_job(name="getter", **HTTP_GET)
    auth.login()
    response = client.get("/jobs/", query_string={"queue": "collect"}, headers=HX)
    assert job_rows(response) == [f"job-{getter}"]
    assert "<code>collect</code>" in body(response)


def test_filter_paused_jobs(client, auth, make_job):
    make_job(name="active one")
    paused = make_job(name="paused one", enabled=None)
    auth.login()
    response = client.get("/jobs/", query_string={"state": "paused"}, headers=HX)
    assert job_rows(response) == [f"job-{paused}"]
    assert "paused" in text(response)
    active = client.get("/jobs/", query_string={"state": "active"}, headers=HX)
    assert f"job-{paused}" not in job_rows(active)


def test_filter_running_and_failing_jobs(app, client, auth, make_job):
    running = make_job(name="running one")
    failing = make_job(name="failing one")
    make_job(name="quiet one")
    add_run(app, running, status="running")
    run_id = add_run(app, failing, status="failed", error="boom")
    with app.app_context():
        db.session.get(Job, failing).last_run_id = run_id
        db.session.commit()
    auth.login()
    assert job_rows(client.get("/jobs/?state=running", headers=HX)) == [f"job-{running}"]
    assert job_rows(client.get("/jobs/?state=failing", headers=HX)) == [f"job-{failing}"]


def test_filters_are_kept_in_the_refresh_url(client, auth, make_job):
    make_job(name="nightly")
    auth.login()
    response = client.get("/jobs/", query_string={"q": "night", "state": "active"})
    refresh = re.search(r'<div id="jobs-table" hx-get="([^"]+)"', body(response)).group(1)
    refresh = html.unescape(refresh)
    assert "q=night" in refresh
    assert "state=active" in refresh
    assert "since=" in refresh


def test_jobs_are_paged_by_25(client, auth, make_job):
    for i in range(1, 31):
        make_job(name=f"bulk {i:02d}")
    auth.login()
    first = client.get("/jobs/")
    assert len(job_rows(first)) == 25
    assert "Page 1 of 2 · 30 in all" in text(first)
    assert "bulk 01" in text(first) and "bulk 26" not in text(first)
    second = client.get("/jobs/", query_string={"page": 2}, headers=HX)
    assert len(job_rows(second)) == 5
    page = text(second)
    assert [f"bulk {i}" in page for i in range(26, 31)] == [True] * 5
    assert "bulk 01" not in page
    assert "Page 2 of 2 · 30 in all" in page
    assert "← Previous" in page


def test_a_page_past_the_end_or_not_a_number_does_not_fail(client, auth, make_job):
    make_job(name="only one")
    auth.login()
    assert job_rows(client.get("/jobs/?page=9")) == []
    assert client.get("/jobs/?page=9").status_code == 200
    response = client.get("/jobs/?page=abc")
    assert response.status_code == 200
    assert len(job_rows(response)) == 1


def test_refresh_with_an_unchanged_token_answers_204(client, auth, make_job):
    make_job(name="nightly")
    auth.login()
    page = body(client.get("/jobs/"))
    token = re.search(r"since=([0-9.]+)", page).group(1)
    unchanged = client.get("/jobs/", query_string={"since": token}, headers=HX)
    assert unchanged.status_code == 204
    assert unchanged.get_data() == b""
    make_job(name="another")
    changed = client.get("/jobs/", query_string={"since": token}, headers=HX)
    assert changed.status_code == 200
    assert "another" in text(changed)


def test_refresh_token_changes_when_a_run_finishes(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    run_id = add_run(app, job_id, status="running")
    auth.login()
    token = re.search(r"since=([0-9.]+)", body(client.get("/jobs/"))).group(1)
    with app.app_context():
        db.session.get(JobRun, run_id).status = "succeeded"
        db.session.get(JobRun, run_id).finished_at = utcnow()
        db.session.commit()
    assert client.get("/jobs/", query_string={"since": token}, headers=HX).status_code == 200


def test_since_token_is_ignored_by_a_full_page_load(client, auth):
    auth.login()
    token = re.search(r"since=([0-9.]+)", body(client.get("/jobs/"))).group(1)
    response = client.get("/jobs/", query_string={"since": token})
    assert response.status_code == 200
    assert "<html" in body(response)


# -- create --------------------------------------------------------------------------------


def test_new_job_form_shows_the_defaults(client, auth):
    auth.login()
    response = client.get("/jobs/new")
    assert response.status_code == 200
    page = body(response)
    assert "New job" in page
    # The first task type (collect queue first) is chosen, with its fields and queue.
    assert '<option value="collect.http_get" selected>' in page
    assert 'name="param.url"' in page
    assert "<option selected>collect</option>" in page
    assert 'id="every" name="every" type="number" min="1" step="1" value="15"' in page


def test_new_job_form_for_a_chosen_task_shows_its_fields(client, auth):
    auth.login()
    page = body(client.get("/jobs/new?task=collect.http_get"))
    assert 'name="param.url"' in page
    assert "<option selected>collect</option>" in page


def test_creating_a_valid_job_redirects_to_its_page(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="Nightly backup"))
    assert response.status_code == 303
    with app.app_context():
        job = db.session.scalar(select(Job).where(Job.name == "Nightly backup"))
        job_id = job.id
        assert job.created_by == "admin"
        assert job.every_seconds == 900
        assert job.queue == "system"
        assert job.params == {"seconds": 0.0}
        assert not job.paused
        assert from_db(job.next_run_at) > now()
    assert response.location == f"/jobs/{job_id}"
    detail = text(client.get(response.location))
    assert "Job 'Nightly backup' created." in detail
    assert "every 15 minutes" in detail
    assert "Nightly backup" in text(client.get("/jobs/"))


def test_creating_a_disabled_job_stores_it_paused_without_a_next_run(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="later", enabled=None))
    assert response.status_code == 303
    job_id = int(response.location.rsplit("/", 1)[1])
    job = load_job(app, job_id)
    assert job.paused
    assert job.next_run_at is None


def test_creating_a_cron_job_in_a_time_zone(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(
        name="weekday mornings", schedule_kind="cron", cron="0 9 * * 1-5", timezone="Europe/Berlin"))
    assert response.status_code == 303
    job = load_job(app, int(response.location.rsplit("/", 1)[1]))
    assert job.cron == "0 9 * * 1-5"
    assert job.timezone == "Europe/Berlin"
    local = from_db(job.next_run_at).astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)
    assert local.isoweekday() <= 5


def test_creating_a_one_off_job_in_the_future(app, client, auth):
    auth.login()
    when = (now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post("/jobs/new", data=job_fields(name="one-off", schedule_kind="once", run_at=when))
    assert response.status_code == 303
    job = load_job(app, int(response.location.rsplit("/", 1)[1]))
    assert from_db(job.next_run_at).strftime("%Y-%m-%dT%H:%M") == when


def _assert_refused(app, response, field: str, message: str):
    """Assert that the form came back with 422, an error on the field, and nothing saved."""
    assert response.status_code == 422
    page = text(response)
    assert "Nothing was saved: correct the fields marked below." in page
    error_id = field.replace(".", "-") + "-error"
    match = re.search(rf'<small id="{re.escape(error_id)}" class="field-error" role="alert">([^<]*)</small>',
                      body(response))
    assert match, f"no error shown on {field}"
    assert message in html.unescape(match.group(1))
    assert job_count(app) == 0


def test_invalid_cron_is_refused_naming_the_minute_field(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="bad cron", schedule_kind="cron", cron="61 * * * *"))
    _assert_refused(app, response, "cron", "minute field")
    assert "61" in text(response)
    # What was typed is kept in the form.
    assert 'value="61 * * * *"' in body(response)
    assert 'value="bad cron"' in body(response)


@pytest.mark.parametrize("every", ["0", "-5"])
def test_zero_or_negative_interval_is_refused(app, client, auth, every):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="bad interval", every=every))
    _assert_refused(app, response, "every", "greater than zero")


def test_interval_that_is_not_a_number_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="bad interval", every="often"))
    _assert_refused(app, response, "every", "Give the interval as a number.")


@pytest.mark.parametrize("every", ["nan", "inf"])
def test_interval_that_is_not_finite_is_refused(app, client, auth, every):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="bad interval", every=every))
    _assert_refused(app, response, "every", "")


def test_interval_over_366_days_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="rare", every="400", every_unit="days"))
    _assert_refused(app, response, "every", "at most 366 days")


def test_one_off_in_the_past_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(
        name="too late", schedule_kind="once", run_at="2001-01-01T09:00"))
    _assert_refused(app, response, "run_at", "This time has already passed.")


def test_one_off_without_a_time_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="when?", schedule_kind="once", run_at=""))
    _assert_refused(app, response, "run_at", "Give the date and time of the one-off run.")


def test_unknown_task_type_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="mystery", task="no.such_task"))
    _assert_refused(app, response, "task", "Choose a task type from the list.")
    assert "no.such_task (unknown)" in text(response)


def test_wrong_parameter_type_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="sleepy", **{"param.seconds": "abc"}))
    _assert_refused(app, response, "param.seconds", "Give a number.")


def test_parameter_out_of_range_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="sleepy", **{"param.seconds": "-1"}))
    _assert_refused(app, response, "param.seconds", "At least 0.")


def test_parameter_that_is_not_a_finite_number_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="sleepy", **{"param.seconds": "nan"}))
    _assert_refused(app, response, "param.seconds", "")


def test_missing_required_parameter_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=http_get_fields(name="getter", **{"param.url": ""}))
    _assert_refused(app, response, "param.url", "This field is required.")


def test_leftover_fields_of_another_task_type_are_ignored(app, client, auth):
    # Without JavaScript, changing the task type does not swap the parameter fields, so the
    # form posts the previous task type's fields too: they are dropped, not stored.
    auth.login()
    response = client.post("/jobs/new", data=http_get_fields(name="getter", **{"param.seconds": "1"}))
    assert response.status_code == 303
    with app.app_context():
        assert "seconds" not in db.session.scalar(select(Job)).params


def test_unknown_parameter_in_json_params_is_refused(app):
    with app.app_context(), pytest.raises(jobspec.JobErrors) as refused:
        job_service.add(job_fields(params={"seconds": 1, "bogus": 2}), "admin")
    assert refused.value.errors == {"param.bogus": "Unknown parameter."}


def test_unknown_time_zone_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="zoned", timezone="Mars/Olympus"))
    _assert_refused(app, response, "timezone", "Unknown time zone 'Mars/Olympus'.")


def test_end_before_start_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(
        name="window", start_at="2031-01-02T00:00", end_at="2031-01-01T00:00"))
    _assert_refused(app, response, "end_at", "The end must be after the start.")


def test_every_bad_field_is_reported_at_once(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(
        name="", every="0", max_concurrent="0", **{"param.seconds": "abc"}))
    assert response.status_code == 422
    page = text(response)
    for message in ("Give the job a name.", "greater than zero", "A whole number from 1 to 100.",
                    "Give a number."):
        assert message in page
    assert job_count(app) == 0


def test_duplicate_name_is_refused_whatever_its_case(app, client, auth, make_job):
    make_job(name="Nightly Backup")
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="  nightly BACKUP "))
    assert response.status_code == 422
    assert "A job named 'nightly BACKUP' already exists." in text(response)
    assert job_count(app) == 1


def test_duplicate_non_ascii_name_is_refused_whatever_its_case(app, client, auth, make_job):
    make_job(name="Ärger")
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="ÄRGER"))
    assert response.status_code == 422
    assert job_count(app) == 1


def test_name_over_100_characters_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="n" * 101))
    _assert_refused(app, response, "name", "At most 100 characters.")


def test_name_of_exactly_100_characters_is_accepted(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="n" * 100))
    assert response.status_code == 303
    assert job_count(app) == 1


def test_description_over_2000_characters_is_refused(app, client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="wordy", description="d" * 2001))
    _assert_refused(app, response, "description", "At most 2000 characters.")


def test_body_over_the_size_limit_is_refused_with_413(app, client, auth):
    auth.login()
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024
    response = client.post("/jobs/new", data=job_fields(name="huge", description="x" * 20_000))
    assert response.status_code == 413
    assert "larger than the 4 KiB limit; nothing was saved." in text(response)
    assert job_count(app) == 0


def test_body_over_the_size_limit_from_htmx_shows_the_message_in_place(app, client, auth, make_job):
    job_id = make_job()
    auth.login()
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post(f"/jobs/{job_id}/pause", data={"next": "x" * 5000}, headers=HX)
    assert response.status_code == 413
    assert response.headers["HX-Retarget"] == "#messages"
    assert "larger than the 1 KiB limit" in text(response)
    assert not load_job(app, job_id).paused


# -- escaping -------------------------------------------------------------------------------


def test_job_name_with_markup_is_shown_escaped(client, auth, make_job):
    job_id = make_job(name="<script>alert(1)</script>", description="<b>bold</b>")
    auth.login()
    for response in (client.get("/jobs/"), client.get("/jobs/", headers=HX), client.get(f"/jobs/{job_id}"),
                     client.get(f"/jobs/{job_id}/edit"), client.get(f"/jobs/{job_id}/delete")):
        page = body(response)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert(1)" not in page
    detail = body(client.get(f"/jobs/{job_id}"))
    assert "&lt;b&gt;bold&lt;/b&gt;" in detail


def test_escaped_name_in_the_row_action_message(client, auth, make_job):
    job_id = make_job(name="<img src=x onerror=alert(1)>")
    auth.login()
    response = client.post(f"/jobs/{job_id}/pause", headers=HX)
    assert "<img src=x" not in body(response)
    assert "Paused '<img src=x onerror=alert(1)>'." in text(response)


# -- row actions -----------------------------------------------------------------------------


def _messages_oob(response) -> str:
    """Return the text of the out-of-band messages area of a fragment."""
    match = re.search(r'<div id="messages" aria-live="polite" hx-swap-oob="true">(.*?)</div>',
                      body(response), re.S)
    assert match, "no out-of-band #messages"
    return html.unescape(match.group(1))


def test_pause_in_place_returns_only_that_row_and_a_message(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    other = make_job(name="other")
    auth.login()
    response = client.post(f"/jobs/{job_id}/pause", headers=HX)
    assert response.status_code == 200
    page = body(response)
    assert "<html" not in page
    assert page.lstrip().startswith(f'<tr id="job-{job_id}"')
    assert job_rows(response) == [f"job-{job_id}"]
    assert f"job-{other}" not in page
    assert "Paused 'nightly'." in _messages_oob(response)
    assert ">Resume<" in page and ">Pause<" not in page
    job = load_job(app, job_id)
    assert job.paused
    assert job.next_run_at is None
    # The message was shown in place, so it does not show again on the next page.
    assert "Paused 'nightly'." not in text(client.get("/jobs/"))


def test_resume_in_place_plans_the_next_run_in_the_future(app, client, auth, make_job):
    job_id = make_job(name="nightly", enabled=None)
    auth.login()
    response = client.post(f"/jobs/{job_id}/resume", headers=HX)
    assert response.status_code == 200
    assert job_rows(response) == [f"job-{job_id}"]
    job = load_job(app, job_id)
    assert not job.paused
    assert now() < from_db(job.next_run_at) <= now() + timedelta(minutes=15, seconds=5)
    message = _messages_oob(response)
    assert "Resumed 'nightly': next run " in message
    assert from_db(job.next_run_at).strftime("%Y-%m-%d %H:%M:%S UTC") in message


def test_run_now_queues_a_manual_run(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    before = load_job(app, job_id).next_run_at
    auth.login()
    response = client.post(f"/jobs/{job_id}/run", headers=HX)
    assert response.status_code == 200
    assert job_rows(response) == [f"job-{job_id}"]
    (run,) = load_runs(app)
    assert (run.job_id, run.status, run.trigger, run.triggered_by) == (job_id, "queued", "manual", "admin")
    assert run.job_name == "nightly"
    assert f"Started 'nightly' (run #{run.id})." in _messages_oob(response)
    assert "running" in text(response)  # the row shows the run is under way
    assert load_job(app, job_id).next_run_at == before  # the schedule is untouched


def test_run_now_at_the_concurrency_limit_is_skipped_with_a_warning(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    add_run(app, job_id, status="running")
    auth.login()
    response = client.post(f"/jobs/{job_id}/run", headers=HX)
    assert response.status_code == 200
    message = _messages_oob(response)
    assert "Not started: Skipped: 1 run(s) still going, the job allows 1." in message
    assert "message-warning" in body(response)
    assert [r.status for r in load_runs(app, job_id=job_id)] == ["running", "skipped"]


def test_delete_in_place_removes_the_row_and_keeps_the_run_history(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    run_id = add_run(app, job_id, status="succeeded")
    auth.login()
    response = client.post(f"/jobs/{job_id}/delete", headers=HX)
    assert response.status_code == 200
    assert "<tr" not in body(response)
    assert "jobsChanged" in json.loads(response.headers["HX-Trigger"])
    assert "Deleted 'nightly'. Its run history is kept." in _messages_oob(response)
    assert load_job(app, job_id) is None
    (run,) = load_runs(app)
    assert run.id == run_id
    assert run.job_id is None
    assert run.job_name == "nightly"
    assert "nightly <small>(deleted)</small>" in text(client.get("/runs/"))


@pytest.mark.parametrize("action", ["pause", "resume", "run"])
def test_row_action_without_javascript_redirects_back(app, client, auth, make_job, action):
    job_id = make_job(name="nightly", enabled=None if action == "resume" else "on")
    auth.login()
    response = client.post(f"/jobs/{job_id}/{action}", data={"next": f"/jobs/{job_id}"})
    assert response.status_code == 303
    assert response.location == f"/jobs/{job_id}"
    page = text(client.get(response.location))
    assert {"pause": "Paused 'nightly'.", "resume": "Resumed 'nightly'",
            "run": "Started 'nightly'"}[action] in page


def test_row_action_without_a_next_page_redirects_to_the_jobs(client, auth, make_job):
    job_id = make_job()
    auth.login()
    response = client.post(f"/jobs/{job_id}/pause")
    assert response.status_code == 303
    assert response.location == "/jobs/"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_row_action_next_cannot_leave_the_site(client, auth, make_job, target):
    job_id = make_job()
    auth.login()
    response = client.post(f"/jobs/{job_id}/pause", data={"next": target})
    assert response.status_code == 303
    assert urlsplit(response.location).netloc == ""
    assert not response.location.startswith(("//", "/\\"))


def test_delete_without_javascript_redirects_to_the_jobs(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    response = client.post(f"/jobs/{job_id}/delete")
    assert response.status_code == 303
    assert response.location == "/jobs/"
    assert "Deleted 'nightly'. Its run history is kept." in text(client.get("/jobs/"))
    assert load_job(app, job_id) is None


def test_delete_confirmation_page_without_javascript(client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    response = client.get(f"/jobs/{job_id}/delete")
    assert response.status_code == 200
    page = text(response)
    assert "Delete “nightly”?" in page
    assert "Its run history is kept." in page
    assert f'action="/jobs/{job_id}/delete"' in body(response)
    assert 'name="csrf_token"' in body(response)


@pytest.mark.parametrize("action", ["pause", "resume", "run", "delete"])
def test_action_on_a_missing_job_is_404(client, auth, action):
    auth.login()
    response = client.post(f"/jobs/999/{action}", headers=HX)
    assert response.status_code == 404
    assert "There is no job 999." in text(response)
    assert response.headers["HX-Retarget"] == "#messages"


def test_pausing_twice_is_harmless(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    client.post(f"/jobs/{job_id}/pause", headers=HX)
    response = client.post(f"/jobs/{job_id}/pause", headers=HX)
    assert response.status_code == 200
    assert load_job(app, job_id).paused
    assert [a[1] for a in audit_actions(app)].count("pause") == 1


# -- edit ------------------------------------------------------------------------------------


def test_edit_form_shows_the_current_values(client, auth, make_job):
    job_id = make_job(name="nightly", every="2", every_unit="hours", description="Backs up",
                      **{"param.seconds": "1.5"})
    auth.login()
    response = client.get(f"/jobs/{job_id}/edit")
    assert response.status_code == 200
    page = body(response)
    assert "Edit “nightly”" in html.unescape(page)
    assert 'id="name" name="name" value="nightly"' in page
    assert ">Backs up</textarea>" in page
    assert 'id="every" name="every" type="number" min="1" step="1" value="2"' in page
    assert "<option selected>hours</option>" in page
    assert 'value="1.5"' in page
    assert f'action="/jobs/{job_id}/edit"' in page


def test_editing_the_schedule_moves_the_next_run(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    before = load_job(app, job_id)
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="nightly", every="2", every_unit="hours"))
    assert response.status_code == 303
    assert response.location == f"/jobs/{job_id}"
    after = load_job(app, job_id)
    assert after.every_seconds == 7200
    assert after.next_run_at != before.next_run_at
    assert now() < from_db(after.next_run_at) <= now() + timedelta(hours=2)
    page = text(client.get(response.location))
    assert "Job 'nightly' saved." in page
    assert "every 2 hours" in page


def test_editing_only_the_name_keeps_the_next_run(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    before = load_job(app, job_id)
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="nightly renamed"))
    assert response.status_code == 303
    after = load_job(app, job_id)
    assert after.name == "nightly renamed"
    assert after.next_run_at == before.next_run_at
    assert load_runs(app) == []  # editing never fires the job


def test_editing_a_job_to_its_own_name_in_another_case_is_allowed(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="NIGHTLY"))
    assert response.status_code == 303
    assert load_job(app, job_id).name == "NIGHTLY"


def test_disabling_a_job_by_editing_clears_its_next_run(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="nightly", enabled=None))
    assert response.status_code == 303
    job = load_job(app, job_id)
    assert job.paused
    assert job.next_run_at is None


def test_edit_errors_answer_422_and_change_nothing(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    make_job(name="taken")
    before = load_job(app, job_id)
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="taken", schedule_kind="cron",
                                                                   cron="* * 32 * *"))
    assert response.status_code == 422
    page = text(response)
    assert "Nothing was saved: correct the fields marked below." in page
    assert "The day-of-month field '32' is not valid (allowed: 1-31)." in page
    after = load_job(app, job_id)
    assert (after.name, after.schedule_kind, after.next_run_at) == ("nightly", "interval", before.next_run_at)
    # The form is still the edit form of this job, with what was typed.
    assert f'action="/jobs/{job_id}/edit"' in body(response)
    assert 'value="* * 32 * *"' in body(response)


def test_edit_to_a_taken_name_is_refused(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    make_job(name="taken")
    auth.login()
    response = client.post(f"/jobs/{job_id}/edit", data=job_fields(name="Taken"))
    assert response.status_code == 422
    assert "A job named 'Taken' already exists." in text(response)
    assert load_job(app, job_id).name == "nightly"


def test_edit_of_a_missing_job_is_404(client, auth):
    auth.login()
    assert client.get("/jobs/999/edit").status_code == 404
    assert client.post("/jobs/999/edit", data=job_fields()).status_code == 404


def test_edit_is_recorded_in_the_audit_log_with_the_changes(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    auth.login()
    client.post(f"/jobs/{job_id}/edit", data=job_fields(name="nightly", every="1", every_unit="hours"))
    page = text(client.get("/audit/"))
    assert "edit" in page
    assert "schedule: every 15 minutes → every hour" in page


# -- form helpers: params, preview, name check ----------------------------------------------------


def test_params_of_a_task_type_come_with_its_queue_out_of_band(client, auth):
    auth.login()
    response = client.get("/jobs/params", query_string={"task": "collect.http_get"}, headers=HX)
    assert response.status_code == 200
    page = body(response)
    assert "<html" not in page
    assert page.lstrip().startswith('<fieldset id="param-fields">')
    assert 'name="param.url"' in page and 'type="url"' in page
    assert 'name="param.timeout"' in page and 'value="30"' in page
    assert "Parameters of HTTP GET" in page
    oob = re.search(r'<select id="queue" name="queue" hx-swap-oob="true">(.*?)</select>', page, re.S)
    assert oob
    assert "<option selected>collect</option>" in oob.group(1)
    assert oob.group(1).count("selected") == 1


def test_params_of_a_choice_parameter_offer_its_choices(client, auth):
    auth.login()
    page = body(client.get("/jobs/params", query_string={"task": "etl.load_csv"}, headers=HX))
    assert '<select id="param.mode" name="param.mode"' in page
    assert '<option value="append" selected>append</option>' in page
    assert "<option selected>etl</option>" in page


def test_params_of_an_unknown_task_ask_to_choose_one(client, auth):
    auth.login()
    page = text(client.get("/jobs/params", query_string={"task": "nope"}, headers=HX))
    assert "Choose a task type to see its parameters." in page


def test_preview_of_a_cron_in_berlin_lists_five_local_times(client, auth):
    auth.login()
    response = client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"})
    assert response.status_code == 200
    page = body(response)
    assert "<html" not in page
    times = re.findall(r'<li><time datetime="([^"]+)">([^<]+)</time></li>', page)
    assert len(times) == 5
    for iso, shown in times:
        assert shown.endswith(" 09:00:00")
        moment = datetime.fromisoformat(iso)
        assert moment > now()
        assert moment.astimezone(timezone.utc).hour in (7, 8)  # 09:00 in Berlin, CET or CEST
    assert "Next runs (Europe/Berlin):" in page
    assert "runs at 09:00 on monday through friday (europe/berlin)." in text(response).lower()


def test_preview_of_an_interval(client, auth):
    auth.login()
    page = text(client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "interval", "every": "90", "every_unit": "minutes"}))
    assert "Runs every 90 minutes." in page
    assert page.count("<li><time") == 5


def test_preview_of_an_invalid_cron_names_the_field(client, auth):
    auth.login()
    response = client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "cron", "cron": "61 * * * *", "timezone": "UTC"})
    assert response.status_code == 200
    assert 'data-field="cron"' in body(response)
    assert "The minute field '61' is not valid (allowed: 0-59)." in text(response)
    assert "<li><time" not in body(response)


def test_preview_of_an_unknown_time_zone_names_the_field(client, auth):
    auth.login()
    response = client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "cron", "cron": "0 9 * * *", "timezone": "Nowhere/Land"})
    assert 'data-field="timezone"' in body(response)
    assert "Unknown time zone 'Nowhere/Land'." in text(response)


@pytest.mark.parametrize("every", ["nan", "inf"])
def test_preview_of_a_non_finite_interval_names_the_field(client, auth, every):
    auth.login()
    response = client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "interval", "every": every, "every_unit": "minutes"})
    assert response.status_code == 200
    assert 'data-field="every"' in body(response)


def test_preview_of_a_one_off_in_the_past_says_so(client, auth):
    auth.login()
    page = text(client.get("/jobs/preview", headers=HX, query_string={
        "schedule_kind": "once", "run_at": "2001-01-01T00:00"}))
    assert "This time has already passed." in page


def test_name_check_reports_a_duplicate(client, auth, make_job):
    make_job(name="Nightly")
    auth.login()
    response = client.get("/jobs/check-name", query_string={"name": "nightly"}, headers=HX)
    assert response.status_code == 200
    assert '<small id="name-error" class="field-error" role="alert">' in body(response)
    assert "A job named 'nightly' already exists." in text(response)


def test_name_check_accepts_a_free_name(client, auth, make_job):
    make_job(name="Nightly")
    auth.login()
    response = client.get("/jobs/check-name", query_string={"name": "hourly"}, headers=HX)
    assert body(response).strip() == '<small id="name-error" class="field-error" ></small>'


def test_name_check_while_editing_accepts_the_jobs_own_name(client, auth, make_job):
    job_id = make_job(name="Nightly")
    auth.login()
    response = client.get("/jobs/check-name", query_string={"name": "NIGHTLY", "job_id": job_id})
    assert "already exists" not in text(response)


def test_name_check_reports_an_empty_or_long_name(client, auth):
    auth.login()
    assert "Give the job a name." in text(client.get("/jobs/check-name?name=%20"))
    assert "At most 100 characters." in text(client.get("/jobs/check-name", query_string={"name": "n" * 101}))


# -- detail page -----------------------------------------------------------------------------


def test_job_page_shows_settings_next_runs_and_recent_runs(app, client, auth, make_job):
    job_id = make_job(name="nightly", description="Backs things up", **{"param.seconds": "2"})
    auth.login()
    page = text(client.get(f"/jobs/{job_id}"))
    assert "Backs things up" in page
    assert "Wait (diagnostic)" in page and "system.sleep" in page
    assert "every 15 minutes" in page
    assert "run once to catch up" in page
    assert "<code>seconds</code> = 2.0" in page
    assert "by admin" in page
    next_runs = re.search(r'<ol class="next-runs">(.*?)</ol>', body(client.get(f"/jobs/{job_id}")), re.S)
    assert next_runs and next_runs.group(1).count("<li>") == 5
    assert "No runs yet." in page

    client.post(f"/jobs/{job_id}/run")
    (run,) = load_runs(app)
    page = text(client.get(f"/jobs/{job_id}"))
    assert f'<tr id="run-{run.id}">' in page
    assert "manual <small>by admin</small>" in page
    assert '<span class="badge status-queued">queued</span>' in page


def test_job_page_of_a_paused_job_says_nothing_is_planned(client, auth, make_job):
    job_id = make_job(name="nightly", enabled=None)
    auth.login()
    page = text(client.get(f"/jobs/{job_id}"))
    assert "Paused: no run is planned." in page
    assert ">Resume<" in page


def test_job_page_runs_filter_and_partial(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    other_job = make_job(name="other")
    ok = add_run(app, job_id, status="succeeded")
    bad = add_run(app, job_id, status="failed", error="boom")
    foreign = add_run(app, other_job, status="failed", error="elsewhere")
    auth.login()
    response = client.get(f"/jobs/{job_id}", query_string={"status": "failed"}, headers=HX)
    page = body(response)
    assert "<html" not in page and page.lstrip().startswith('<div id="runs-table"')
    assert f'id="run-{bad}"' in page
    assert f'id="run-{ok}"' not in page and f'id="run-{foreign}"' not in page


def test_unknown_job_page_is_404_with_a_clear_message(client, auth):
    auth.login()
    response = client.get("/jobs/999")
    assert response.status_code == 404
    assert "There is no job 999." in text(response)
    assert "<html" in body(response)
    partial = client.get("/jobs/999", headers=HX)
    assert partial.status_code == 404
    assert partial.headers["HX-Retarget"] == "#messages"
    assert "<html" not in body(partial)


def test_unknown_page_is_404(client, auth):
    auth.login()
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert "That page does not exist." in text(response)


# -- runs ------------------------------------------------------------------------------------


def test_runs_page_lists_runs_newest_first(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    first = add_run(app, job_id, status="succeeded", result={"slept": 0})
    second = add_run(app, job_id, status="failed", error="RuntimeError: boom")
    auth.login()
    response = client.get("/runs/")
    assert response.status_code == 200
    page = body(response)
    assert "<html" in page
    assert page.index(f'id="run-{second}"') < page.index(f'id="run-{first}"')
    assert "RuntimeError: boom" in text(response)
    assert '{"slept": 0}' in text(response)


def test_runs_page_filters_by_status(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    ok = add_run(app, job_id, status="succeeded")
    bad = add_run(app, job_id, status="failed", error="boom")
    auth.login()
    page = body(client.get("/runs/?status=failed"))
    assert f'id="run-{bad}"' in page and f'id="run-{ok}"' not in page
    assert "<option selected>failed</option>" in page
    empty = text(client.get("/runs/?status=lost"))
    assert "No runs with status lost yet." in empty


def test_runs_page_ignores_an_unknown_status(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    ok = add_run(app, job_id, status="succeeded")
    auth.login()
    response = client.get("/runs/?status=bogus")
    assert response.status_code == 200
    assert f'id="run-{ok}"' in body(response)


def test_runs_htmx_request_returns_only_the_table(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    add_run(app, job_id, status="running")
    auth.login()
    response = client.get("/runs/", headers=HX)
    page = body(response)
    assert "<html" not in page
    assert page.lstrip().startswith('<div id="runs-table"')
    assert 'hx-trigger="every 2s"' in page  # an active run keeps the table refreshing
    assert "HX-Request" in response.headers["Vary"]


def test_runs_table_stops_refreshing_when_nothing_is_active(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    add_run(app, job_id, status="succeeded")
    auth.login()
    assert 'hx-trigger="every 2s"' not in body(client.get("/runs/", headers=HX))


def test_failed_run_shows_its_error_and_traceback(app, client, auth, make_job):
    job_id = make_job(name="doomed", task="system.fail",
                      **{"param.seconds": None, "param.message": "Boom on purpose"})
    auth.login()
    client.post(f"/jobs/{job_id}/run")
    (run,) = load_runs(app)
    with app.app_context():
        assert run_recorder.execute(run.id) == "failed"
    response = client.get(f"/runs/{run.id}")
    assert response.status_code == 200
    page = text(response)
    assert f'Run #{run.id} of <a href="/jobs/{job_id}">doomed</a>' in page
    assert "RuntimeError: Boom on purpose" in page
    assert "Traceback (most recent call last)" in page
    assert "raise RuntimeError(message)" in page
    assert "manual by admin" in page
    assert "failed" in page


def test_run_detail_partial_refreshes_only_while_active(app, client, auth, make_job):
    job_id = make_job(name="nightly")
    active = add_run(app, job_id, status="running")
    done = add_run(app, job_id, status="succeeded")
    auth.login()
    partial = body(client.get(f"/runs/{active}", headers=HX))
    assert "<html" not in partial
    assert partial.lstrip().startswith('<div id="run-detail"')
    assert 'hx-trigger="every 2s"' in partial
    assert 'hx-trigger="every 2s"' not in body(client.get(f"/runs/{done}", headers=HX))


def test_report_run_offers_its_csv_for_download(app, client, auth, make_job):
    sleeper = make_job(name="nightly")
    add_run(app, sleeper, status="succeeded")
    job_id = make_job(name="weekly report", task="report.runs_csv", **{"param.seconds": None})
    auth.login()
    client.post(f"/jobs/{job_id}/run")
    (run,) = load_runs(app, job_id=job_id)
    with app.app_context():
        assert run_recorder.execute(run.id) == "succeeded"
    detail = body(client.get(f"/runs/{run.id}"))
    assert f'href="/runs/{run.id}/artifact"' in detail
    with client.get(f"/runs/{run.id}/artifact") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        assert "runs-7d.csv" in response.headers["Content-Disposition"]
        lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "id,job_name,task,queue,status,trigger,queued_at,started_at,finished_at," \
                       "duration_ms,attempt,worker,error"
    assert len(lines) == 2
    assert ",nightly,system.sleep,system,succeeded," in lines[1]


def test_run_without_a_file_has_nothing_to_download(app, client, auth, make_job):
    run_id = add_run(app, make_job(), status="succeeded")
    auth.login()
    response = client.get(f"/runs/{run_id}/artifact")
    assert response.status_code == 404
    assert "This run produced no file." in text(response)


def test_artifact_outside_the_artifact_folder_is_not_served(app, client, auth, make_job, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    run_id = add_run(app, make_job(), status="succeeded", artifact=str(secret))
    auth.login()
    response = client.get(f"/runs/{run_id}/artifact")
    assert response.status_code == 404
    assert "The file of this run is no longer there." in text(response)
    assert "do not serve" not in text(response)


def test_missing_run_is_404_with_a_clear_message(client, auth):
    auth.login()
    for path in ("/runs/999", "/runs/999/artifact"):
        response = client.get(path)
        assert response.status_code == 404
        assert "There is no run 999." in text(response)


# -- workers ---------------------------------------------------------------------------------


def test_workers_page_says_the_scheduler_is_not_running(client, auth):
    auth.login()
    response = client.get("/workers/")
    assert response.status_code == 200
    page = text(response)
    assert "<html" in body(response)
    assert "Embedded scheduler (APScheduler)" in page
    assert "not running" in page
    assert "No process is firing jobs." in page


def test_workers_htmx_refresh_returns_only_the_status(client, auth):
    auth.login()
    response = client.get("/workers/", headers=HX)
    page = body(response)
    assert "<html" not in page
    assert page.lstrip().startswith('<div id="workers-status"')
    assert "not running" in page


# -- audit -----------------------------------------------------------------------------------


def _audit_rows(response) -> list[tuple[str, str, str]]:
    """Return (who, action, what) of each row of the audit table, top first."""
    rows = re.findall(r"<tr>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>\s*<td><span class=\"badge action-(\w+)\">"
                      r".*?</td>\s*<td>(.*?)</td>", body(response), re.S)
    return [(who, action, re.sub(r"<[^>]+>", "", html.unescape(what)).split(" ", 1)[1].strip())
            for who, action, what in rows]


def test_audit_log_lists_changes_with_who_made_them(client, auth):
    auth.login()
    response = client.post("/jobs/new", data=job_fields(name="nightly"))
    job_id = int(response.location.rsplit("/", 1)[1])
    client.post(f"/jobs/{job_id}/pause", headers=HX)
    client.post(f"/jobs/{job_id}/resume", headers=HX)
    client.post(f"/jobs/{job_id}/run", headers=HX)
    client.post(f"/jobs/{job_id}/delete", headers=HX)
    response = client.get("/audit/")
    assert response.status_code == 200
    assert _audit_rows(response) == [
        ("admin", "delete", "nightly"),
        ("admin", "run", "nightly"),
        ("admin", "resume", "nightly"),
        ("admin", "pause", "nightly"),
        ("admin", "create", "nightly"),
    ]
    assert "system.sleep, every 15 minutes" in text(response)


def test_audit_log_search_by_job_or_user(client, auth, make_job):
    auth.login()
    first = make_job(name="nightly")
    second = make_job(name="hourly")
    client.post(f"/jobs/{first}/pause")
    client.post(f"/jobs/{second}/pause")
    response = client.get("/audit/", query_string={"q": "NIGHT"}, headers=HX)
    page = body(response)
    assert "<html" not in page and page.lstrip().startswith('<div id="audit-table"')
    assert [(a, w) for _, a, w in _audit_rows(response)] == [("pause", "nightly"), ("create", "nightly")]
    assert len(_audit_rows(client.get("/audit/", query_string={"q": "admin"}))) == 4
    assert "Nothing recorded yet." in text(client.get("/audit/", query_string={"q": "nobody"}))


def test_audit_log_search_treats_wildcards_literally(client, auth, make_job):
    make_job(name="nightly")
    auth.login()
    assert "Nothing recorded yet." in text(client.get("/audit/", query_string={"q": "%"}))


def test_empty_audit_log_says_so(client, auth):
    auth.login()
    assert "Nothing recorded yet." in text(client.get("/audit/"))
