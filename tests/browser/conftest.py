"""Browser fixtures: the admin served by a real gunicorn process, Debian's Chromium."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.celery_fixtures import redis_server  # noqa: F401 (fixture)
from tests.processes import ROOT, CeleryStack, stop
from tests.support import free_port, wait_for_port
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
USERS = {"admin": "admin-password", "viewer": "viewer-password"}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium (Playwright's own download is not reachable here)."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"],
    }


@pytest.fixture(scope="session", params=["embedded", "celery"])
def live_server(request, tmp_path_factory):
    """Serve the admin with gunicorn on a free port, in each mode, on a fresh database.

    Celery mode adds a worker on the four queues and a RedisBeatScheduler beat, all real
    processes, stopped by PID afterwards.
    """
    mode = request.param
    redis = request.getfixturevalue("redis_server") if mode == "celery" else None
    stack = CeleryStack(tmp_path_factory.mktemp(f"live-{mode}"), redis, db_number=40)
    stack.instance.mkdir()
    extra = {"SCHEDULER_SYNC_SECONDS": "0.2", "LOG_LEVEL": "WARNING"}
    if mode == "embedded":
        extra["USE_CELERY"] = "false"
    stack.flask("db", "upgrade", **extra)
    for name, password in USERS.items():
        stack.flask("users", "create", name, "--role", name, "--password", password, **extra)
    port = free_port()
    server = None
    try:
        if mode == "celery":
            stack.start_worker()
            stack.start_beat()
        with open(stack.folder / "server.log", "ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                 "--threads", "4", "webapp.wsgi:app"],
                cwd=ROOT, env=stack.env(**extra), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(port)
        yield LiveServer(f"http://127.0.0.1:{port}", mode)
    finally:
        if server is not None:
            stop(server)
        stack.stop_all()


class LiveServer(str):
    """The server's base URL, which also knows the scheduler mode it runs."""

    def __new__(cls, url: str, mode: str):
        value = super().__new__(cls, url)
        value.mode = mode
        return value


@pytest.fixture(scope="session")
def base_url(live_server):
    """Point page.goto('/...') at the live server."""
    return live_server


def log_in(page, name: str) -> None:
    """Log in through the form."""
    page.goto("/auth/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(USERS[name])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/jobs/")


@pytest.fixture
def admin_page(page):
    """Return a page logged in as an admin."""
    log_in(page, "admin")
    return page


@pytest.fixture
def viewer_page(page):
    """Return a page logged in as a viewer."""
    log_in(page, "viewer")
    return page
