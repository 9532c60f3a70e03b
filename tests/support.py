"""Helpers for tests that wait on real processes and threads."""

from __future__ import annotations

import socket
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.05,
             message: str = "condition") -> T:
    """Return the condition's first truthy value, polling until the timeout, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on the loopback port."""

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(accepting, timeout=timeout, interval=0.1, message=f"port {port}")


def job_fields(**overrides) -> dict:
    """Return valid form fields of a job, with overrides."""
    fields = {
        "name": "collect example",
        "task": "system.sleep",
        "param.seconds": "0",
        "schedule_kind": "interval",
        "every": "15",
        "every_unit": "minutes",
        "timezone": "UTC",
        "misfire_policy": "run_once",
        "max_concurrent": "1",
        "enabled": "on",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def runs_of(app, job_id: int, status: str | None = None) -> list:
    """Return the runs of a job, oldest first, detached from the session."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import JobRun

    with app.app_context():
        query = select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)
        if status:
            query = query.where(JobRun.status == status)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows
