"""Scheduler backends: one interface, chosen by USE_CELERY, behind the scheduler service.

Views never import a backend; they call webapp.services.jobs, which owns the database
transaction and then tells the active backend what changed.
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import Flask, current_app


class SchedulerBackend(Protocol):
    """What the scheduler service needs from a backend."""

    name: str

    def start(self) -> None:
        """Start firing jobs (or contending for the right to)."""

    def shutdown(self) -> None:
        """Stop firing jobs and release what is held."""

    def job_changed(self, job_id: int) -> None:
        """Bring the projection of one job in line with its database row."""

    def job_removed(self, job_id: int) -> None:
        """Drop a deleted job from the projection."""

    def dispatch(self, run_id: int) -> None:
        """Send a queued run for execution now."""

    def sync(self) -> dict[str, int]:
        """Reconcile the whole projection with the database; return counts of changes."""

    def status(self) -> dict[str, Any]:
        """Return the state of the scheduler and its workers, for the workers page."""


def create_backend(app: Flask) -> SchedulerBackend:
    """Return the backend the configuration asks for."""
    if app.config["USE_CELERY"]:
        from .celery import CeleryBackend

        return CeleryBackend(app)
    from .embedded import EmbeddedBackend

    return EmbeddedBackend(app)


def backend() -> SchedulerBackend:
    """Return the current app's scheduler backend."""
    return current_app.extensions["scheduler"]
