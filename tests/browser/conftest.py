"""Browser fixtures: the admin served by a real gunicorn process, Debian's Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
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


def _flask(env: dict, *args: str) -> None:
    """Run a `flask` CLI command of the project, failing the test run if it fails."""
    subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, check=True,
                   capture_output=True, text=True)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """Serve the admin with gunicorn on a free port, on a fresh database; stop it by PID."""
    instance = tmp_path_factory.mktemp("live") / "instance"
    port = free_port()
    env = {
        **os.environ,
        "FLASK_APP": "webapp",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": "browser-tests",
        "USE_CELERY": "false",
        "SCHEDULER_SYNC_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    _flask(env, "db", "upgrade")
    for name, password in USERS.items():
        _flask(env, "users", "create", name, "--role", name, "--password", password)
    log = open(instance / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "webapp.wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


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
