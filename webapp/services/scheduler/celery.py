"""The Celery backend: writes the Redis schedule that RedisBeatScheduler sends from.

The admin never sends scheduled runs itself: it writes each change to Redis and wakes the beat,
which takes effect within milliseconds. "Run now" is queued in the database and sent to the
job's queue at once. A Redis that is down does not fail a change: the database has it, and the
beat reconciles Redis with the database when Redis is back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import redis
from flask import Flask

from tasks.schedule_store import ScheduleStore

from ...extensions import db
from ...models import Job, JobRun
from . import projection

log = logging.getLogger(__name__)
BEAT_STALE_SECONDS = 15


class CeleryBackend:
    """Keep the Redis schedule in step with the database; send manual runs to Celery."""

    name = "celery"

    def __init__(self, app: Flask):
        self.app = app
        self._store: ScheduleStore | None = None
        self._celery = None

    @property
    def store(self) -> ScheduleStore:
        """Return the Redis schedule store, connected on first use."""
        if self._store is None:
            self._store = ScheduleStore.from_config(self.app.config)
        return self._store

    @property
    def celery(self):
        """Return a Celery app on this Flask app's broker (the admin only sends and inspects)."""
        if self._celery is None:
            from tasks.celery_app import create_celery

            self._celery = create_celery(self.app.config["CELERY_BROKER_URL"],
                                         self.app.config["CELERY_RESULT_BACKEND"])
        return self._celery

    def start(self) -> None:
        """Reconcile Redis with the database once, at start."""
        with self.app.app_context():
            try:
                log.info("schedule sync at start: %s", self.sync())
            except redis.RedisError as exc:
                log.warning("Redis unavailable at start (%s); the beat will reconcile later", exc)

    def shutdown(self) -> None:
        """Close the Redis connections."""
        if self._store is not None:
            self._store.redis.close()
            self._store = None
        if self._celery is not None:
            from tasks.celery_app import close_publisher

            close_publisher(self._celery)
            self._celery.close()
            self._celery = None

    def job_changed(self, job_id: int) -> None:
        """Write the job to Redis and wake the beat."""
        job = db.session.get(Job, job_id)
        if job is None:
            return
        try:
            projection.put(self.store, job)
        except redis.RedisError as exc:
            log.warning("could not write job %s to Redis (%s); the beat will reconcile", job_id, exc)

    def job_removed(self, job_id: int) -> None:
        """Remove the job from Redis and wake the beat."""
        try:
            self.store.remove(job_id)
        except redis.RedisError as exc:
            log.warning("could not remove job %s from Redis (%s); the beat will reconcile", job_id, exc)

    def dispatch(self, run_id: int) -> None:
        """Send a queued run to its queue now."""
        from tasks import runs
        from tasks.celery_app import send_runs

        try:
            send_runs(self.celery, [db.session.get(JobRun, run_id)])
        except Exception as exc:  # broker down: say so on the run instead of leaving it queued
            log.warning("could not send run %s: %s", run_id, exc)
            runs.fail(run_id, RuntimeError(f"Could not reach the Celery broker: {exc}"))

    def sync(self) -> dict[str, int]:
        """Reconcile Redis with the database."""
        return projection.reconcile(self.store)

    def status(self) -> dict[str, Any]:
        """Return the workers (Celery inspect), the beats (Redis heartbeats) and the lease."""
        info: dict[str, Any] = {"mode": "celery", "workers": [], "beats": [], "errors": []}
        try:
            info["workers"] = self._workers()
        except Exception as exc:  # the page must render even when the broker is down
            info["errors"].append(f"Could not ask the workers: {exc}")
        try:
            info.update(self._beats())
        except redis.RedisError as exc:
            info["errors"].append(f"Could not read the beat state from Redis: {exc}")
        info["running"] = bool(info["workers"]) and bool(info.get("leader"))
        return info

    def _workers(self) -> list[dict[str, Any]]:
        """Ask every worker for its queues, tasks and counters (1 s timeout)."""
        inspect = self.celery.control.inspect(timeout=1.0)
        ping = inspect.ping() or {}
        if not ping:
            return []
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
        stats = inspect.stats() or {}
        workers = []
        for name in sorted(ping):
            total = (stats.get(name) or {}).get("total") or {}
            pool = (stats.get(name) or {}).get("pool") or {}
            workers.append({
                "name": name,
                "ok": ping[name].get("ok") == "pong",
                "queues": sorted(q["name"] for q in queues.get(name, [])),
                "active": [_task_brief(t) for t in active.get(name, [])],
                "reserved": len(reserved.get(name, [])),
                "processed": sum(total.values()),
                "concurrency": pool.get("max-concurrency"),
            })
        return workers

    def _beats(self) -> dict[str, Any]:
        """Return the beats' heartbeats and who holds the lease."""
        lease, ttl = self.store.lease()
        holder = lease.rsplit("|", 1)[0] if lease else None
        now = datetime.now(timezone.utc).timestamp()
        beats = []
        for beat_id, beat in sorted(self.store.beats().items()):
            age = now - beat.get("heartbeat", 0)
            beats.append({**beat, "id": beat_id, "age": age, "alive": age < BEAT_STALE_SECONDS,
                          "leader": beat_id == holder})
        return {
            "beats": beats,
            "leader": holder,
            "lease_ms": ttl if lease else None,
            "scheduled": self.store.redis.zcard(self.store.due_key),
            "next_due": _from_ts(self.store.next_due()),
            "built": self.store.meta(),
        }


def _task_brief(task: dict[str, Any]) -> dict[str, Any]:
    """Return what the workers page shows of an active task."""
    return {"id": task.get("id"), "name": task.get("name"), "args": task.get("args"),
            "started": _from_ts(task.get("time_start"))}


def _from_ts(value: float | None) -> datetime | None:
    """Return epoch seconds as a UTC datetime."""
    return datetime.fromtimestamp(value, timezone.utc) if value else None
