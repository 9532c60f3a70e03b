"""Run the embedded mode's scheduler (APScheduler in a web process) without serving pages.

    USE_CELERY=false INSTANCE_PATH=... python bench/embedded_host.py

The benchmark's stand-in for a gunicorn worker holding the scheduler lock: it imports
webapp.wsgi as gunicorn would (which starts the scheduler) and waits for SIGTERM.
"""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webapp.wsgi import app  # noqa: E402,F401  (starts the scheduler)


def _stop(signum, _frame):
    raise SystemExit(0)


signal.signal(signal.SIGTERM, _stop)
while True:
    signal.pause()
