"""The Celery app the sqlalchemy-celery-beat beat of the benchmark runs with.

    SCB_DBURI=sqlite:////path/schedule.db celery -A bench.scb_app beat \
        -S sqlalchemy_celery_beat.schedulers:DatabaseScheduler --max-interval 5

It is the admin's own Celery app (same task names, same routes to the queues collect, report,
etl and system, same broker from CELERY_BROKER_URL), plus the settings of sqlalchemy-celery-beat's
DatabaseScheduler. Only the beat loop differs, so the figures compare the schedulers, not the apps.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery.signals import beat_init

from tasks.celery_app import create_celery

# The schedule database (the scheduler's own tables: celery_periodictask, ...). The bench puts
# a SQLite file in the system's folder; the library's default is sqlite:///schedule.db in the cwd.
DBURI = os.environ.get("SCB_DBURI", "sqlite:///scb-schedule.db")
# Like redbeat's: the beat looks at the database (for a change) once per loop and sleeps up to
# this long in between. The library's own default is 5 s too; Celery's is 0 (= 300 s).
MAX_LOOP_INTERVAL = float(os.environ.get("SCB_MAX_LOOP_INTERVAL", "5"))
# Touched once the scheduler has loaded its schedule (beat_init), so the bench knows it is up.
READY_FILE = os.environ.get("SCB_READY_FILE")


def engine_options(dburi: str) -> dict:
    """SQLAlchemy engine options: for SQLite, wait up to 15 s for a lock (the admin's busy_timeout)."""
    return {"connect_args": {"timeout": 15}} if dburi.startswith("sqlite") else {}


def make_app(broker_url: str | None = None, dburi: str | None = None):
    """Return a Celery app on the broker, configured for sqlalchemy-celery-beat."""
    app = create_celery(broker_url)
    dburi = dburi or DBURI
    app.conf.update(
        beat_dburi=dburi,
        beat_schema=None,  # SQLite has no schemas
        beat_engine_options=engine_options(dburi),
        beat_max_loop_interval=MAX_LOOP_INTERVAL,
        # Celery's own beat skips its daily celery.backend_cleanup entry when the result backend
        # expires results itself (Redis does); DatabaseScheduler.install_default_entries adds it
        # whenever result_expires is set, and its message (04:00 UTC) would land in the queue
        # lists the bench counts. The beat process stores no results, so nothing else changes.
        result_expires=None,
    )
    return app


@beat_init.connect
def _ready(sender=None, **_kwargs) -> None:
    """Mark the beat as started: its scheduler exists and has read the schedule."""
    if READY_FILE:
        Path(READY_FILE).touch()


celery = app = make_app()
