"""Shared fixtures: an app on a temporary SQLite database, clients, users and a job factory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from flask_migrate import upgrade

from webapp import create_app
from webapp.extensions import db
from webapp.models import User
from tests.support import job_fields
from webapp.services import jobs as job_service

PASSWORDS = {"admin": "admin-password", "viewer": "viewer-password"}


def _config(instance: Path) -> dict:
    """Return the test configuration of an app whose files live in `instance`."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'test.db'}",
        "SCHEDULER_LOCK_FILE": str(instance / "scheduler.lock"),
        "ARTIFACT_DIR": str(instance / "artifacts"),
        "ETL_IMPORT_DIR": str(instance / "imports"),
        "ETL_DATABASE_URL": f"sqlite:///{instance / 'etl.db'}",
        "SCHEDULER_SYNC_SECONDS": 0.2,
    }


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """Build a database once with the migrations (so they are tested); tests get copies."""
    instance = tmp_path_factory.mktemp("template") / "instance"
    instance.mkdir()
    template = create_app({**_config(instance), "SECRET_KEY": "template"})
    with template.app_context():
        upgrade()
        for name, password in PASSWORDS.items():
            user = User(username=name, role=name)
            user.set_password(password)
            db.session.add(user)
        db.session.commit()
        db.engine.dispose()
    return instance / "test.db"


@pytest.fixture
def app(tmp_path: Path, monkeypatch, migrated_database: Path):
    """Return an app on its own copy of the migrated database, scheduler not started."""
    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.setenv("INSTANCE_PATH", str(instance))
    shutil.copy(migrated_database, instance / "test.db")
    app = create_app(_config(instance))
    yield app
    app.extensions["scheduler"].shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """Return a test client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a CLI runner of the app."""
    return app.test_cli_runner()


class AuthActions:
    """Log the test client in and out, and carry the CSRF token like the pages do."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/auth/login") -> str:
        """Return the CSRF token embedded in a page."""
        html = self.client.get(path).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def login(self, username: str = "admin", password: str | None = None):
        """Log in and make every later request carry the CSRF header, as htmx does."""
        token = self.csrf_token()
        response = self.client.post(
            "/auth/login",
            data={"username": username, "password": password or PASSWORDS[username],
                  "csrf_token": token},
        )
        self.client.environ_base["HTTP_X_CSRFTOKEN"] = self.csrf_token("/jobs/")
        return response

    def logout(self):
        """Log out."""
        return self.client.post("/auth/logout")


@pytest.fixture
def auth(client):
    """Return login helpers for the test client."""
    return AuthActions(client)


@pytest.fixture
def make_job(app):
    """Return a factory that creates jobs through the scheduler service."""
    counter = iter(range(1, 10_000))

    def make(**overrides):
        overrides.setdefault("name", f"job {next(counter)}")
        with app.app_context():
            job = job_service.add(job_fields(**overrides), "admin")
            return job.id

    return make
