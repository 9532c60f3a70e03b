"""Flask CLI commands: manage users, create the first admin, sync the scheduler."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from .extensions import db
from .models import ROLES, User

MIN_PASSWORD = 8

users = AppGroup("users", help="Manage the operators who can log in.")


def _password(value: str | None) -> str:
    """Return a checked password, or fail the command."""
    if value is None or len(value) < MIN_PASSWORD:
        raise click.BadParameter(f"the password needs at least {MIN_PASSWORD} characters")
    return value


def _find(name: str) -> User:
    """Return the user of that name, or fail the command."""
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    return user


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password", help="Prompted for when not given.")
def create_user(name: str, role: str, password: str | None) -> None:
    """Create a user."""
    if db.session.scalar(select(User).where(User.username == name)):
        raise click.ClickException(f"a user named {name!r} already exists")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = User(username=name, role=role)
    user.set_password(_password(password))
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created {role} {name}.")


@users.command("set-password")
@click.argument("name")
@click.option("--password", help="Prompted for when not given.")
def set_password(name: str, password: str | None) -> None:
    """Set a user's password."""
    user = _find(name)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    user.set_password(_password(password))
    db.session.commit()
    click.echo(f"Password of {name} changed.")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def set_role(name: str, role: str) -> None:
    """Change a user's role."""
    _find(name).role = role
    db.session.commit()
    click.echo(f"{name} is now {role}.")


@users.command("list")
def list_users() -> None:
    """List the users and their roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        seen = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.username:<24} {user.role:<8} last login: {seen}")


@users.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_user(name: str, yes: bool) -> None:
    """Delete a user."""
    user = _find(name)
    if not yes:
        click.confirm(f"Delete {name}?", abort=True)
    db.session.delete(user)
    db.session.commit()
    click.echo(f"Deleted {name}.")


@users.command("ensure-admin")
@click.option("--name", default="admin", show_default=True)
@click.option("--password", envvar="ADMIN_PASSWORD", help="Default: $ADMIN_PASSWORD, else generated.")
def ensure_admin(name: str, password: str | None) -> None:
    """Create a first admin account if there is no admin yet; print a generated password once."""
    if db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin")):
        click.echo("An admin account exists; nothing to do.")
        return
    if db.session.scalar(select(User).where(User.username == name)) is not None:
        raise click.ClickException(
            f"there is no admin, and {name!r} is taken by a viewer: promote it with "
            f"'flask users set-role {name} admin' or pass --name"
        )
    generated = password is None or password == ""
    if generated:
        password = secrets.token_urlsafe(12)
    user = User(username=name, role="admin")
    user.set_password(_password(password))
    db.session.add(user)
    db.session.commit()
    if generated:
        click.echo("=" * 60)
        click.echo(f"  First admin account created: {name} / {password}")
        click.echo("  This password is shown once. Change it with:")
        click.echo(f"    flask --app webapp users set-password {name}")
        click.echo("=" * 60)
    else:
        click.echo(f"First admin account {name} created with the password from ADMIN_PASSWORD.")


@click.command("sync-schedule")
@with_appcontext
def sync_schedule() -> None:
    """Reconcile the active scheduler backend with the database."""
    from .services import jobs

    click.echo(jobs.sync())


def register(app: Flask) -> None:
    """Add the commands to the app's CLI."""
    app.cli.add_command(users)
    app.cli.add_command(sync_schedule)
