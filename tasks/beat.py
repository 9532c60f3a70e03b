"""RedisBeatScheduler: a Celery beat that sends due jobs from a Redis sorted set.

    celery -A tasks beat --scheduler tasks.beat:RedisBeatScheduler

Compared with Celery's own beat, celery-redbeat and database-backed beats:

- due jobs come from ZRANGEBYSCORE (O(log n + due)); every job due in a tick is claimed and
  sent in batches of BEAT_BATCH, over one broker connection;
- the beat blocks on a Redis list (BLPOP) between ticks; the admin pushes to it after every
  change, so a change takes effect at once, with no periodic reload of the schedule;
- one beat sends: it holds a lease of BEAT_LEASE_SECONDS (default 5 s), renewed while alive;
  standbys take over within a lease of its death; a leader that cannot renew stops sending and
  becomes a standby. Each batch is claimed by a Lua script fenced by the lease's token, and the
  database records one run per job instant, so no instant is sent twice, even across a takeover;
- a claimed instant stays in an outbox until it is recorded and sent: a beat that dies in
  between leaves it to the next leader, so no instant is lost either;
- Redis lost: retry with backoff (at most 10 s), send nothing without the lease, reconcile with
  the database on return; Redis restarted empty: the schedule is rebuilt from the database.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

import redis
from celery.beat import Scheduler
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import JobRun
from webapp.models.clock import utcnow
from webapp.schedules import Schedule
from webapp.services import reaper
from webapp.services.firing import fire_claimed, fire_claimed_many, is_misfire
from webapp.services.scheduler import projection

from . import celery_app
from .schedule_store import ScheduleStore

log = logging.getLogger(__name__)


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class RedisBeatScheduler(Scheduler):
    """A Celery beat scheduler fed by the admin through Redis, safe to run several of."""

    def __init__(self, app, *args, **kwargs):
        self.lease_ms = int(_seconds("BEAT_LEASE_SECONDS", 5) * 1000)
        self.batch = int(os.environ.get("BEAT_BATCH", "1000"))
        self.housekeeping_every = _seconds("BEAT_HOUSEKEEPING_SECONDS", 5)
        self.beat_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease: str | None = None
        self.store: ScheduleStore | None = None
        self._renewed_at = 0.0
        self._housekept_at = 0.0
        self._reconciled_revision: int | None = None
        self._reconciled_at = None
        self._backoff = 0.0
        self._heartbeat_at, self._heartbeat_role = 0.0, None
        self._stats = {"sent": 0, "ticks": 0, "last_tick": None, "last_sent": None, "since": time.time()}
        kwargs.setdefault("max_interval", 1)
        super().__init__(app, *args, **kwargs)

    # -- Celery's Scheduler interface ------------------------------------------------------

    def setup_schedule(self) -> None:
        """Connect to Redis; the schedule itself lives there, not in self.data."""
        self.flask = celery_app.flask_app()
        self.store = ScheduleStore.from_config(self.flask.config)
        log.info("beat %s: lease %.1fs, batch %d", self.beat_id, self.lease_ms / 1000, self.batch)

    @property
    def schedule(self):
        return {}

    def tick(self, *args, **kwargs) -> float:
        """Do one round: hold or seek the lease, send what is due, then wait for a change."""
        try:
            with self.flask.app_context():
                wait = self._round()
            self._backoff = 0.0
            return wait
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            reason = f"Redis unreachable: {exc}"
        except Exception as exc:  # never let the beat die: stand by, start clean, try again
            log.exception("beat %s: round failed", self.beat_id)
            reason = f"round failed: {exc!r}"
        # Whatever broke, the next lead starts clean: fresh broker connections, and the
        # take-over path (reconcile, outbox) finishes what this round claimed but did not send.
        self._lose_lease(reason)
        self._reset_broker()
        self._backoff = min(max(self._backoff * 2, 0.5), 10.0)
        log.warning("beat %s: %s; retrying in %.1fs", self.beat_id, reason, self._backoff)
        return self._backoff

    def _reset_broker(self) -> None:
        """Drop the Celery app's broker connections (kombu can keep a broken one)."""
        celery_app.reset_publisher(self.app)

    def sync(self) -> None:
        """Nothing to persist: the schedule and the runs are already stored."""

    def close(self) -> None:
        """Give the lease up at once so a standby takes over without waiting for it to expire."""
        try:
            if self.lease:
                self.store.release(self.lease)
            self.store.forget_beat(self.beat_id)
        except redis.RedisError:
            pass
        self.lease = None

    # -- one round -------------------------------------------------------------------------

    def _round(self) -> float:
        now = time.time()
        self._stats["ticks"] += 1
        self._stats["last_tick"] = now
        if not self._hold_lease(now):
            self._heartbeat(now)
            return min(self.lease_ms / 2000, 1.0)
        # Housekeeping waits while jobs are due (a burst is sent first), but never for long.
        since = now - self._housekept_at
        if since >= self.housekeeping_every and (since >= 3 * self.housekeeping_every
                                                  or not self.store.due(now, 1)):
            self._housekeeping(now)
        sent = self._send_due(now)
        self._heartbeat(now)
        if sent >= self.batch:
            return 0  # more is due: go on at once
        self._wait_for_change()
        return 0

    def _hold_lease(self, now: float) -> bool:
        """Keep the lease (renewing it a few times per term) or try to take it."""
        if self.lease:
            if now - self._renewed_at < self.lease_ms / 3000:
                return True
            if self.store.renew(self.lease, self.lease_ms):
                self._renewed_at = now
                return True
            self._lose_lease("lease lost (stalled or cut off)")
            return False
        lease = self.store.acquire(self.beat_id, self.lease_ms)
        if lease is None:
            return False
        self.lease, self._renewed_at = lease, now
        log.info("beat %s: leading with lease %s", self.beat_id, lease)
        self._take_over(now)
        return True

    def _lose_lease(self, reason: str) -> None:
        if self.lease:
            log.warning("beat %s: %s; standing by", self.beat_id, reason)
            try:
                self.store.release(self.lease)  # let a healthy standby (or us, later) lead now
            except redis.RedisError:
                pass
        self.lease = None
        self._reconciled_revision = None
        self._reconciled_at = None

    def _take_over(self, now: float) -> None:
        """On taking the lead: make Redis match the database and finish a dead leader's work."""
        self._reconcile()
        self._recover_outbox(now)
        self._housekept_at = now

    def _reconcile(self, full: bool = True) -> None:
        """Make Redis match the database; after a Redis wipe, send the queued runs again."""
        wiped = not self.store.is_built()
        started = utcnow()
        revision = projection.current_revision()
        if full or wiped or self._reconciled_at is None:
            projection.reconcile(self.store)
        else:  # the admin wrote its changes itself: only repair what it may have missed
            projection.reconcile_recent(self.store, self._reconciled_at - timedelta(seconds=5))
        self._reconciled_revision, self._reconciled_at = revision, started
        if wiped:
            # Their messages may have gone with the broker's data. Sending again is harmless:
            # a worker claims a run queued -> running only once.
            queued = db.session.scalars(select(JobRun).where(JobRun.status == "queued")).all()
            if queued:
                celery_app.send_runs(self.app, queued)
                log.warning("beat %s: Redis had lost the schedule; sent %d queued run(s) again",
                            self.beat_id, len(queued))

    def _housekeeping(self, now: float) -> None:
        """Every few seconds: rebuild a lost schedule, catch changes Redis missed, reap lost runs."""
        self._housekept_at = now
        if not self.store.is_built() or projection.current_revision() != self._reconciled_revision:
            self._reconcile(full=False)
        reaper.reap_lost_runs()
        for beat_id, beat in self.store.beats().items():  # forget beats gone for an hour
            if now - beat.get("heartbeat", 0) > 3600:
                self.store.forget_beat(beat_id)

    # -- sending ---------------------------------------------------------------------------

    def _send_due(self, now: float) -> int:
        """Claim, record and send the jobs due now, one batch."""
        items = self.store.due(now, self.batch)
        if not items:
            return 0
        records = self.store.records([job_id for job_id, _ in items])
        now_dt = datetime.fromtimestamp(now, timezone.utc)
        plan = []

        for job_id, score in items:
            record = records.get(job_id)
            following = None
            if record is not None and not record.get("paused"):
                schedule = Schedule.from_dict(record["schedule"])
                instant = datetime.fromtimestamp(score, timezone.utc)
                base = now_dt if is_misfire(instant, now_dt) else instant
                following = schedule.next_after(base)
            plan.append((job_id, score, following.timestamp() if following else None))
        claimed = set(self.store.claim(self.lease, plan))
        if not claimed:
            if self.lease and not self.store.renew(self.lease, self.lease_ms):
                self._lose_lease("lease lost while claiming")
            return len(items)
        todo = [(job_id, score, nxt) for job_id, score, nxt in plan if job_id in claimed]
        self._record_and_send(todo, now_dt)
        return len(items)

    def _record_and_send(self, todo, now_dt: datetime) -> None:
        """Record runs for claimed instants in the database, send the queued ones, clear the outbox."""
        claims = [(int(job_id), _utc(score), _utc(nxt)) for job_id, score, nxt in todo]
        sent = celery_app.send_runs(self.app, fire_claimed_many(claims, now_dt))
        self.store.done([(job_id, score) for job_id, score, _ in todo])
        self._stats["sent"] += sent
        if sent:
            self._stats["last_sent"] = time.time()
            log.info("beat %s: sent %d run(s)", self.beat_id, sent)

    def _recover_outbox(self, now: float) -> None:
        """Record and send instants a dead leader claimed but may not have sent."""
        left = self.store.outbox()
        if not left:
            return
        now_dt = datetime.fromtimestamp(now, timezone.utc)
        resend = []
        for job_id, score in left:
            instant = datetime.fromtimestamp(score, timezone.utc)
            nxt = self.store.score(int(job_id))
            following = datetime.fromtimestamp(nxt, timezone.utc) if nxt else None
            run = fire_claimed(int(job_id), instant, following, now_dt)
            if run is None:  # already recorded: resend if no worker has taken it yet
                run = db.session.scalar(select(JobRun).where(
                    JobRun.job_id == int(job_id), JobRun.scheduled_for == instant.replace(tzinfo=None)))
            if run is not None and run.status == "queued":
                resend.append(run)
        # A run sent twice is harmless: a worker claims it queued -> running only once.
        celery_app.send_runs(self.app, resend)
        self.store.done(left)
        log.warning("beat %s: recovered %d claimed instant(s) of a previous leader", self.beat_id, len(left))

    def _wait_for_change(self) -> None:
        """Block until the next due time, a change from the admin, or the next lease renewal."""
        next_due = self.store.next_due()
        renew_in = self.lease_ms / 3000 - (time.time() - self._renewed_at)
        timeout = renew_in if next_due is None else min(next_due - time.time(), renew_in)
        self.store.wait(timeout)

    def _heartbeat(self, now: float) -> None:
        """Publish this beat's state, at most once a second (or when its role changes)."""
        role = "leader" if self.lease else "standby"
        if now - self._heartbeat_at < 1.0 and role == self._heartbeat_role:
            return
        self._heartbeat_at, self._heartbeat_role = now, role
        self.store.heartbeat(self.beat_id, {
            "host": socket.gethostname(), "pid": os.getpid(),
            "role": role, "heartbeat": now,
            "last_tick": self._stats["last_tick"], "last_sent": self._stats["last_sent"],
            "sent": self._stats["sent"], "since": self._stats["since"],
        })


def _utc(timestamp: float | None) -> datetime | None:
    """Return epoch seconds as a UTC datetime (None stays None)."""
    return datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else None
