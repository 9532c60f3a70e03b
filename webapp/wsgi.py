"""The WSGI entry point: the app, with its scheduler started (gunicorn webapp.wsgi:app).

Each gunicorn worker imports this after the fork and starts a sync loop; only the one that
holds the scheduler lock fires jobs. Do not use gunicorn --preload: the loop's thread would
be started before the fork and lost in the workers.
"""

import atexit

from . import create_app

app = create_app()
if app.config["SCHEDULER_ENABLED"]:
    app.extensions["scheduler"].start()
    atexit.register(app.extensions["scheduler"].shutdown)
