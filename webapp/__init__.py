"""The job scheduler admin: a Flask + HTMX front end over APScheduler or Celery."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import event

from . import config
from .extensions import csrf, db, htmx, login_manager, migrate


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the admin application."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = Flask(
        __name__,
        instance_path=os.environ.get("INSTANCE_PATH", os.path.join(root, "instance")),
        template_folder=os.path.join(root, "templates"),
        static_folder=os.path.join(root, "static"),
    )
    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(root, "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see the scheduler."
    with app.app_context():
        _tune_sqlite(db.engine)

    from .views import audit, auth, errors, filters, jobs, runs, workers

    for blueprint in (auth.bp, jobs.bp, runs.bp, workers.bp, audit.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    filters.register(app)

    from . import cli

    cli.register(app)

    from .services.scheduler import create_backend

    app.extensions["scheduler"] = create_backend(app)

    @app.before_request
    def require_login():
        """Send anyone not logged in to the login page, except for the login page itself."""
        if request.endpoint in ("auth.login", "static") or current_user.is_authenticated:
            return None
        return login_manager.unauthorized()

    @app.get("/")
    def index():
        """Show the jobs page."""
        return redirect(url_for("jobs.index"))

    return app


def _tune_sqlite(engine) -> None:
    """Put SQLite in WAL mode with a busy timeout, so run writes do not block pages."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
