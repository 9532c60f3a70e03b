"""The Celery app that Celery's own beat (PersistentScheduler) runs with in the benchmark.

    PERSISTENT_SCHEDULE=entries.json celery -A bench.persistent_app beat -s FILE --max-interval 5

Celery's default beat takes its schedule from the `beat_schedule` setting and keeps only each
entry's last run in a shelve file: a change means editing the setting and restarting the beat.
The bench writes the entries as JSON, [name, every seconds, tag, last run (epoch) or null], and
this module turns them into `beat_schedule` on the admin's own Celery app (same task names and
queues as the other beats). A `last_run_at` in an entry is what the shelve would hold after a
previous run; Celery keeps it for an entry that is new to the shelve.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

from tasks.celery_app import create_celery

MAX_LOOP_INTERVAL = float(os.environ.get("PERSISTENT_MAX_LOOP_INTERVAL", "5"))


def make_app(broker_url: str | None = None, schedule_file: str | None = None):
    app = create_celery(broker_url)
    app.conf.beat_max_loop_interval = MAX_LOOP_INTERVAL
    path = schedule_file or os.environ.get("PERSISTENT_SCHEDULE")
    if path and os.path.exists(path):
        with open(path) as fh:
            entries = json.load(fh)
        app.conf.beat_schedule = {
            name: {"task": "system.sleep", "schedule": timedelta(seconds=every), "args": [tag],
                   "last_run_at": datetime.fromtimestamp(last, timezone.utc) if last is not None else None}
            for name, every, tag, last in entries
        }
    return app


celery = app = make_app()
