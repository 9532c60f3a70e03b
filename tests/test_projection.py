"""Reconciling the Redis schedule with the database repairs what the admin could not write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.celery_fixtures import redis_server  # noqa: F401 (fixture)
from tests.support import job_fields
from webapp.extensions import db
from webapp.models import Job
from webapp.models.clock import utcnow
from webapp.services import jobs as service
from webapp.services.scheduler import projection
from webapp.services.scheduler.celery import CeleryBackend

pytestmark = pytest.mark.integration


@pytest.fixture
def store(app, redis_server):  # noqa: F811
    app.config.update(SCHEDULE_REDIS_URL=f"{redis_server.url}/61", SCHEDULE_REDIS_PREFIX=f"p{id(app)}")
    backend = CeleryBackend(app)
    yield backend.store
    backend.store.redis.flushdb()
    backend.shutdown()


def test_recent_changes_missed_by_redis_are_repaired(app, store):
    with app.app_context():
        kept = service.add(job_fields(name="kept"), "admin").id
        missed = service.add(job_fields(name="missed"), "admin").id
        projection.reconcile(store)
        since = utcnow() - timedelta(seconds=1)
        job = db.session.get(Job, missed)  # changed while Redis was unreachable
        job.paused, job.next_run_at, job.revision = True, None, job.revision + 1
        db.session.commit()
        result = projection.reconcile_recent(store, since)
        assert result["written"] == 1
        assert store.score(missed) is None and store.score(kept) is not None
        assert store.records([missed])[str(missed)]["paused"] is True


def test_a_deletion_missed_by_redis_falls_back_to_a_full_reconcile(app, store):
    with app.app_context():
        gone = service.add(job_fields(name="gone"), "admin").id
        projection.reconcile(store)
        db.session.delete(db.session.get(Job, gone))
        db.session.commit()
        result = projection.reconcile_recent(store, utcnow())
        assert result["removed"] == 1 and store.score(gone) is None and not store.records([gone])
