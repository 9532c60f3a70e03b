"""Project jobs from the database into the Redis schedule, and reconcile the two.

Used by the admin's Celery backend (after each change, and at start) and by the beat (when it
takes the lead, when Redis comes back, and when it finds the schedule gone or out of step).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from tasks.schedule_store import ScheduleStore

from ...extensions import db
from ...models import Job, ScheduleRevision

log = logging.getLogger(__name__)
CHUNK = 1000


def record(job: Job) -> dict[str, Any]:
    """Return the job's record as the beat reads it."""
    return {
        "id": job.id,
        "name": job.name,
        "task": job.task,
        "queue": job.queue,
        "schedule": job.schedule.to_dict(),
        "misfire_policy": job.misfire_policy,
        "max_concurrent": job.max_concurrent,
        "paused": job.paused,
        "revision": job.revision,
    }


def next_ts(job: Job) -> float | None:
    """Return the job's next fire time as epoch seconds, or None when it is not due."""
    if job.paused or job.next_run is None:
        return None
    return job.next_run.timestamp()


def put(store: ScheduleStore, job: Job) -> None:
    """Write one job to Redis and wake the beat."""
    store.put(record(job), next_ts(job))


def current_revision() -> int:
    """Return the database's schedule revision counter."""
    return db.session.scalar(select(ScheduleRevision.value).where(ScheduleRevision.id == 1)) or 0


def reconcile(store: ScheduleStore) -> dict[str, int]:
    """Make Redis match the database: add what is missing, fix what changed, drop the stale.

    Jobs are compared by revision, so an unchanged job keeps the next run the beat gave it.
    A Redis that lost the schedule (restarted empty) has no revisions: everything is rebuilt.
    """
    revision = current_revision()
    wanted = dict(db.session.execute(select(Job.id, Job.revision)).all())
    held = store.revisions()
    changed = [job_id for job_id, rev in wanted.items() if held.get(str(job_id)) != rev]
    stale = [job_id for job_id in held if int(job_id) not in wanted]
    built = store.is_built()

    def puts():
        for start in range(0, len(changed), CHUNK):
            ids = changed[start:start + CHUNK]
            for job in db.session.scalars(select(Job).where(Job.id.in_(ids))):
                yield record(job), next_ts(job)

    written = store.apply(puts(), stale, meta={
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "revision": revision,
    })
    if changed or stale or not built:
        log.info("schedule reconciled: %d written, %d removed (%s)", written, len(stale),
                 "rebuilt from the database" if not built else "incremental")
    return {"jobs": len(wanted), "written": written, "removed": len(stale), "rebuilt": int(not built)}


def reconcile_recent(store: ScheduleStore, since: datetime) -> dict[str, int]:
    """Check only the jobs changed since `since` (naive UTC); all of them if jobs were deleted.

    The beat's routine check: the admin normally wrote each change to Redis itself, so this
    only repairs the writes that failed, without re-reading 100,000 jobs after every edit.
    """
    rows = dict(db.session.execute(select(Job.id, Job.revision).where(Job.updated_at >= since)).all())
    total = db.session.scalar(select(func.count()).select_from(Job))
    if total != store.redis.hlen(store.revs_key):
        return reconcile(store)  # something was deleted (or added) behind Redis's back
    ids = list(rows)
    held = store.redis.hmget(store.revs_key, ids) if ids else []
    changed = [job_id for job_id, rev in zip(ids, held) if rev is None or int(rev) != rows[job_id]]
    jobs = db.session.scalars(select(Job).where(Job.id.in_(changed))).all() if changed else []
    written = store.apply(((record(j), next_ts(j)) for j in jobs), [],
                          meta={"revision": current_revision()}) if changed else 0
    return {"jobs": total, "written": written, "removed": 0, "rebuilt": 0}
