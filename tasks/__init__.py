"""Task types, the run recorder, and the Celery app (`celery -A tasks ...`).

The Celery app is created on first access, so the embedded mode and the admin's own imports of
`tasks.registry` and `tasks.runs` do not pay for it.
"""


def __getattr__(name: str):
    if name in ("celery", "app"):
        from .celery_app import celery

        return celery
    raise AttributeError(name)
