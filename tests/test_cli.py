"""The `flask users` commands: create, list, change and delete operators, and the first admin."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import User


@pytest.fixture
def cli(app, runner, monkeypatch):
    """Return a function that runs a CLI command as `flask` does."""
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)

    def invoke(*args, **kwargs):
        return runner.invoke(args=list(args), **kwargs)

    return invoke


def user(app, name: str) -> User | None:
    """Return a detached copy of the user of that name, or None."""
    with app.app_context():
        found = db.session.scalar(select(User).where(User.username == name))
        if found is not None:
            db.session.expunge(found)
        return found


def usernames(app) -> list[str]:
    """Return every user name, sorted."""
    with app.app_context():
        return sorted(db.session.scalars(select(User.username)))


def test_create_a_viewer(app, cli):
    result = cli("users", "create", "carol", "--role", "viewer", "--password", "carol-password")
    assert result.exit_code == 0, result.output
    assert result.output == "Created viewer carol.\n"
    carol = user(app, "carol")
    assert carol.role == "viewer"
    assert carol.check_password("carol-password")
    assert "carol-password" not in carol.password_hash


def test_create_defaults_to_the_viewer_role(app, cli):
    assert cli("users", "create", "dave", "--password", "dave-password").exit_code == 0
    assert user(app, "dave").role == "viewer"


def test_created_user_can_log_in(app, cli, client, auth):
    cli("users", "create", "erin", "--role", "admin", "--password", "erin-password")
    response = client.post("/auth/login", data={"username": "erin", "password": "erin-password",
                                                "csrf_token": auth.csrf_token()})
    assert response.status_code == 302
    assert "Log out erin" in client.get("/jobs/").get_data(as_text=True)


def test_create_prompts_for_the_password_twice(app, cli):
    result = cli("users", "create", "frank", input="frank-password\nfrank-password\n")
    assert result.exit_code == 0, result.output
    assert "frank-password" not in result.output  # typed hidden
    assert user(app, "frank").check_password("frank-password")


def test_create_refuses_a_duplicate_name(app, cli):
    result = cli("users", "create", "viewer", "--password", "another-password")
    assert result.exit_code == 1
    assert "a user named 'viewer' already exists" in result.output
    assert user(app, "viewer").check_password("viewer-password")


def test_create_refuses_a_short_password(app, cli):
    result = cli("users", "create", "gina", "--password", "short")
    assert result.exit_code == 2
    assert "the password needs at least 8 characters" in result.output
    assert user(app, "gina") is None


def test_create_refuses_an_unknown_role(app, cli):
    result = cli("users", "create", "hank", "--role", "root", "--password", "hank-password")
    assert result.exit_code == 2
    assert "'root' is not one of 'admin', 'viewer'" in result.output
    assert user(app, "hank") is None


def test_list_shows_every_user_with_role_and_last_login(app, cli, client, auth):
    result = cli("users", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["admin", "admin", "last", "login:", "never"]
    assert lines[1].split() == ["viewer", "viewer", "last", "login:", "never"]
    auth.login("viewer")
    after = cli("users", "list").output.splitlines()
    assert after[0].endswith("last login: never")
    assert re.search(r"^viewer\s+viewer\s+last login: \d{4}-\d\d-\d\d \d\d:\d\d$", after[1])


def test_set_password_replaces_the_password(app, cli):
    result = cli("users", "set-password", "viewer", "--password", "brand-new-password")
    assert result.exit_code == 0
    assert result.output == "Password of viewer changed.\n"
    viewer = user(app, "viewer")
    assert viewer.check_password("brand-new-password")
    assert not viewer.check_password("viewer-password")


def test_set_password_prompts_when_not_given(app, cli):
    result = cli("users", "set-password", "viewer", input="prompted-password\nprompted-password\n")
    assert result.exit_code == 0, result.output
    assert user(app, "viewer").check_password("prompted-password")


def test_set_password_refuses_a_short_password(app, cli):
    result = cli("users", "set-password", "viewer", "--password", "short")
    assert result.exit_code == 2
    assert "at least 8 characters" in result.output
    assert user(app, "viewer").check_password("viewer-password")


def test_set_password_of_an_unknown_user_fails(cli):
    result = cli("users", "set-password", "nobody", "--password", "long-enough")
    assert result.exit_code == 1
    assert "no user named 'nobody'" in result.output


def test_set_role_promotes_a_viewer(app, cli):
    result = cli("users", "set-role", "viewer", "admin")
    assert result.exit_code == 0
    assert result.output == "viewer is now admin.\n"
    assert user(app, "viewer").role == "admin"


def test_set_role_refuses_an_unknown_role_or_user(app, cli):
    assert cli("users", "set-role", "viewer", "root").exit_code == 2
    assert user(app, "viewer").role == "viewer"
    missing = cli("users", "set-role", "nobody", "admin")
    assert missing.exit_code == 1
    assert "no user named 'nobody'" in missing.output


def test_delete_with_yes_removes_the_user(app, cli):
    result = cli("users", "delete", "viewer", "--yes")
    assert result.exit_code == 0
    assert result.output == "Deleted viewer.\n"
    assert usernames(app) == ["admin"]


def test_delete_asks_for_confirmation(app, cli):
    declined = cli("users", "delete", "viewer", input="n\n")
    assert declined.exit_code == 1
    assert "Aborted!" in declined.output
    assert user(app, "viewer") is not None
    confirmed = cli("users", "delete", "viewer", input="y\n")
    assert confirmed.exit_code == 0
    assert user(app, "viewer") is None


def test_delete_of_an_unknown_user_fails(app, cli):
    result = cli("users", "delete", "nobody", "--yes")
    assert result.exit_code == 1
    assert "no user named 'nobody'" in result.output
    assert usernames(app) == ["admin", "viewer"]


def test_deleted_user_is_logged_out(app, cli, client, auth):
    auth.login("viewer")
    cli("users", "delete", "viewer", "--yes")
    assert client.get("/jobs/").status_code == 302


def test_ensure_admin_does_nothing_when_an_admin_exists(app, cli):
    result = cli("users", "ensure-admin")
    assert result.exit_code == 0
    assert result.output == "An admin account exists; nothing to do.\n"
    assert usernames(app) == ["admin", "viewer"]
    assert user(app, "admin").check_password("admin-password")


def test_ensure_admin_creates_one_and_prints_its_generated_password_once(app, cli):
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin")
    assert result.exit_code == 0, result.output
    password = re.search(r"First admin account created: admin / (\S+)", result.output).group(1)
    assert len(password) >= 12
    assert result.output.count(password) == 1
    assert "users set-password admin" in result.output
    admin = user(app, "admin")
    assert admin.role == "admin"
    assert admin.check_password(password)
    again = cli("users", "ensure-admin")
    assert again.output == "An admin account exists; nothing to do.\n"
    assert password not in again.output
    assert user(app, "admin").check_password(password)


def test_ensure_admin_generates_a_different_password_each_time(app, cli):
    passwords = []
    for _ in range(2):
        cli("users", "delete", "admin", "--yes")
        output = cli("users", "ensure-admin").output
        passwords.append(re.search(r"admin / (\S+)", output).group(1))
    assert passwords[0] != passwords[1]


def test_ensure_admin_uses_admin_password_from_the_environment_without_printing_it(app, cli):
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin", env={"ADMIN_PASSWORD": "from-the-environment"})
    assert result.exit_code == 0, result.output
    assert "from-the-environment" not in result.output
    assert result.output == "First admin account admin created with the password from ADMIN_PASSWORD.\n"
    assert user(app, "admin").check_password("from-the-environment")


def test_ensure_admin_with_an_empty_admin_password_generates_one(app, cli):
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin", env={"ADMIN_PASSWORD": ""})
    assert result.exit_code == 0
    password = re.search(r"admin / (\S+)", result.output).group(1)
    assert user(app, "admin").check_password(password)


def test_ensure_admin_refuses_a_short_admin_password(app, cli):
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin", env={"ADMIN_PASSWORD": "short"})
    assert result.exit_code == 2
    assert "at least 8 characters" in result.output
    assert user(app, "admin") is None


def test_ensure_admin_with_another_name(app, cli):
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin", "--name", "root", env={"ADMIN_PASSWORD": "root-password"})
    assert result.exit_code == 0
    assert user(app, "root").role == "admin"
    assert user(app, "admin") is None


def test_ensure_admin_ignores_viewers(app, cli):
    # A viewer is not an admin: the first admin is still created.
    cli("users", "delete", "admin", "--yes")
    result = cli("users", "ensure-admin", env={"ADMIN_PASSWORD": "admin-password-2"})
    assert result.exit_code == 0
    assert usernames(app) == ["admin", "viewer"]


def test_ensure_admin_when_the_admin_name_belongs_to_a_viewer(app, cli):
    cli("users", "set-role", "admin", "viewer")
    result = cli("users", "ensure-admin", env={"ADMIN_PASSWORD": "admin-password-2"})
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "admin" in result.output
    assert user(app, "admin") is not None


def test_sync_schedule_reports_without_a_running_scheduler(cli):
    result = cli("sync-schedule")
    assert result.exit_code == 0
    assert "{'added': 0, 'removed': 0}" in result.output
