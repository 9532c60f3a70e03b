"""An operator's flows in a real browser: log in, create, pause, run, edit, delete, watch."""

from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
_names = itertools.count(1)


def unique(prefix: str) -> str:
    """Return a job name no other test uses."""
    return f"{prefix} {os.getpid()}-{next(_names)}"


def create_job(page: Page, name: str, *, task: str = "system.sleep", every: str = "1",
               unit: str = "hours", params: dict[str, str] | None = None) -> None:
    """Fill in and submit the new-job form, and land on the job's page."""
    page.goto("/jobs/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Task type").select_option(task)
    for label, value in (params or {}).items():
        page.get_by_label(label).fill(value)
    page.get_by_role("radio", name="Interval").check()
    page.get_by_label("Every").fill(every)
    page.get_by_label("Unit").select_option(unit)
    page.get_by_role("button", name="Create job").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def row(page: Page, name: str):
    """Return the jobs table row of a job."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def test_log_in_and_out(admin_page: Page):
    expect(admin_page.get_by_role("heading", name="Jobs")).to_be_visible()
    admin_page.get_by_role("button", name=re.compile("Log out")).click()
    expect(admin_page.get_by_role("heading", name="Log in")).to_be_visible()


def test_wrong_password_is_refused(page: Page):
    page.goto("/auth/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")


def test_create_a_job_and_see_it_listed(admin_page: Page):
    name = unique("collect")
    create_job(admin_page, name, every="15", unit="minutes")
    expect(admin_page.get_by_role("status")).to_contain_text(f"Job '{name}' created.")
    admin_page.get_by_role("link", name="Jobs", exact=True).click()
    expect(row(admin_page, name)).to_contain_text("every 15 minutes")


def test_pause_and_resume_in_place(admin_page: Page):
    name = unique("pausable")
    create_job(admin_page, name)
    admin_page.goto("/jobs/?q=" + name)
    admin_page.get_by_role("button", name=f"Pause {name}").click()
    expect(row(admin_page, name)).to_contain_text("paused")
    expect(admin_page.get_by_role("status")).to_contain_text(f"Paused '{name}'.")
    admin_page.get_by_role("button", name=f"Resume {name}").click()
    expect(row(admin_page, name)).not_to_contain_text("paused")
    expect(admin_page.get_by_role("status")).to_contain_text(f"Resumed '{name}'")
    expect(admin_page).to_have_url(re.compile(r"/jobs/\?q="))  # acted in place, no navigation


def test_run_now_and_see_the_run_appear(admin_page: Page):
    name = unique("runnable")
    create_job(admin_page, name, params={"Seconds": "1"})
    admin_page.goto("/jobs/?q=" + name)
    admin_page.get_by_role("button", name=f"Run {name} now").click()
    expect(admin_page.get_by_role("status")).to_contain_text(f"Started '{name}'")
    # The table polls while the run is active and settles on its outcome.
    expect(row(admin_page, name).get_by_text("succeeded")).to_be_visible(timeout=15_000)
    admin_page.get_by_role("link", name="Runs", exact=True).click()
    expect(admin_page.get_by_role("row").filter(has_text=name).first).to_contain_text("manual")


def test_failed_run_shows_its_error(admin_page: Page):
    name = unique("failing")
    create_job(admin_page, name, task="system.fail", params={"Message": "source unreachable"})
    admin_page.get_by_role("button", name="Run now").click()
    admin_page.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    expect(admin_page.get_by_text("RuntimeError: source unreachable").first).to_be_visible(timeout=15_000)
    expect(admin_page.get_by_text("Traceback", exact=True)).to_be_visible()


def test_edit_a_job(admin_page: Page):
    name = unique("editable")
    create_job(admin_page, name)
    admin_page.get_by_role("button", name="Edit").click()
    admin_page.get_by_role("radio", name="Cron").check()
    admin_page.get_by_label("Cron expression").fill("0 9 * * 1-5")
    admin_page.get_by_label("Time zone").fill("Europe/Berlin")
    expect(admin_page.locator("#schedule-preview")).to_contain_text("Monday through Friday")
    admin_page.get_by_role("button", name="Save").click()
    expect(admin_page.get_by_role("status")).to_contain_text(f"Job '{name}' saved.")
    expect(admin_page.get_by_text("(Europe/Berlin)").first).to_be_visible()


def test_delete_with_confirmation(admin_page: Page):
    name = unique("deletable")
    create_job(admin_page, name)
    admin_page.goto("/jobs/?q=" + name)
    admin_page.once("dialog", lambda dialog: dialog.accept())
    admin_page.get_by_role("button", name=f"Delete {name}").click()
    expect(admin_page.get_by_role("status")).to_contain_text(f"Deleted '{name}'")
    expect(row(admin_page, name)).to_have_count(0)


def test_dismissing_the_confirmation_keeps_the_job(admin_page: Page):
    name = unique("kept")
    create_job(admin_page, name)
    admin_page.goto("/jobs/?q=" + name)
    admin_page.once("dialog", lambda dialog: dialog.dismiss())
    admin_page.get_by_role("button", name=f"Delete {name}").click()
    expect(row(admin_page, name)).to_have_count(1)


def test_search_as_you_type_updates_the_address(admin_page: Page):
    name = unique("searchable")
    create_job(admin_page, name)
    admin_page.goto("/jobs/")
    admin_page.get_by_role("searchbox", name="Search").fill(name)
    expect(admin_page).to_have_url(re.compile(r"q=searchable"))
    expect(admin_page.locator("#jobs-table tbody tr")).to_have_count(1)
    admin_page.reload()  # the pushed address is a full page too
    expect(row(admin_page, name)).to_have_count(1)


def test_validation_errors_are_shown_and_nothing_saved(admin_page: Page):
    admin_page.goto("/jobs/new")
    admin_page.get_by_role("radio", name="Cron").check()
    admin_page.get_by_label("Cron expression").fill("61 * * * *")
    expect(admin_page.locator("#schedule-preview")).to_contain_text("The minute field '61' is not valid")
    admin_page.get_by_role("button", name="Create job").click()
    expect(admin_page.get_by_text("Nothing was saved")).to_be_visible()
    expect(admin_page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")


def test_run_history_filters_by_status(admin_page: Page):
    name = unique("history")
    create_job(admin_page, name, task="system.fail")
    admin_page.get_by_role("button", name="Run now").click()
    admin_page.goto("/runs/")
    admin_page.get_by_label("Status").select_option("failed")
    expect(admin_page).to_have_url(re.compile(r"status=failed"))
    expect(admin_page.get_by_role("row").filter(has_text=name).first).to_contain_text("failed", timeout=15_000)


def test_workers_page_shows_what_runs_the_jobs(admin_page: Page, live_server):
    admin_page.get_by_role("link", name="Workers").click()
    status = admin_page.locator("#workers-status")
    if live_server.mode == "embedded":
        expect(status.get_by_text("Embedded scheduler (APScheduler)")).to_be_visible()
        expect(status).to_contain_text("running")
    else:
        expect(status.get_by_text("Celery workers")).to_be_visible()
        expect(status).to_contain_text("w1@")
        expect(status.get_by_text("leader", exact=True)).to_be_visible()


def test_viewer_sees_jobs_but_cannot_edit(admin_page: Page, browser):
    name = unique("read only")
    create_job(admin_page, name)
    viewer = browser.new_page(base_url=admin_page.url.split("/jobs")[0])
    from tests.browser.conftest import log_in

    log_in(viewer, "viewer")
    viewer.goto("/jobs/?q=" + name)
    expect(row(viewer, name)).to_have_count(1)
    expect(viewer.get_by_role("button", name=f"Pause {name}")).to_have_count(0)
    expect(viewer.get_by_role("link", name="New job")).to_have_count(0)
    response = viewer.goto("/jobs/new")
    assert response.status == 403
    expect(viewer.get_by_role("alert")).to_contain_text("can view jobs but not change them")
    viewer.close()


def test_screenshot_of_the_jobs_page(admin_page: Page, live_server):
    """Make the README's screenshot: a few jobs of each kind, one run of each outcome."""
    jobs = [("Fetch exchange rates", "collect.http_get", {"URL": "http://127.0.0.1:9/rates"}),
            ("Weekly runs report", "report.runs_csv", {}),
            ("Prune old runs", "system.prune_runs", {})]
    for name, task, params in jobs:
        admin_page.goto("/jobs/?q=" + name)
        if row(admin_page, name).count() == 0:
            create_job(admin_page, name, task=task, params=params)
    admin_page.set_viewport_size({"width": 1280, "height": 720})
    admin_page.goto("/jobs/")
    expect(admin_page.locator("#jobs-table")).to_be_visible()
    target = Path("test-results") / f"jobs-page-{live_server.mode}.png"
    target.parent.mkdir(exist_ok=True)
    admin_page.screenshot(path=target, full_page=False)
    if os.environ.get("SCREENSHOT_DIR") and live_server.mode == "embedded":
        shutil.copy(target, Path(os.environ["SCREENSHOT_DIR"]) / "jobs-page.png")
    assert target.stat().st_size > 10_000
