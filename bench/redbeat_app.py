"""The Celery app the celery-redbeat beat of the benchmark runs with.

    celery -A bench.redbeat_app beat -S redbeat.RedBeatScheduler --max-interval 5

It is the admin's own Celery app (same task names, same routes to the queues collect, report,
etl and system, same broker from CELERY_BROKER_URL), plus redbeat's settings. Only the beat
loop differs, so the figures compare the schedulers, not the apps.
"""

from __future__ import annotations

import os

from redbeat.schedulers import ensure_conf

from tasks.celery_app import create_celery

# Celery's default is 0 (= 300 s); redbeat sleeps up to this long between looks at Redis.
MAX_LOOP_INTERVAL = float(os.environ.get("REDBEAT_MAX_LOOP_INTERVAL", "5"))
KEY_PREFIX = "redbeat:"


def make_app(broker_url: str | None = None):
    """Return a Celery app on the broker, configured for redbeat."""
    app = create_celery(broker_url)
    app.conf.update(
        beat_max_loop_interval=MAX_LOOP_INTERVAL,
        redbeat_redis_url=app.conf.broker_url,
        redbeat_redis_options={},
        redbeat_key_prefix=KEY_PREFIX,
    )
    ensure_conf(app)  # app.redbeat_conf, as the scheduler and the entries read it
    return app


celery = app = make_app()
