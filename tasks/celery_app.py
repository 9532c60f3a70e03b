"""The Celery app: one Celery task per registered task type, run inside a Flask app context.

    celery -A tasks worker -Q collect,report,etl,system
    celery -A tasks beat --scheduler tasks.beat:RedisBeatScheduler

Every Celery task takes a run id, never a model: the run row (queued by the beat or by "run
now") carries the job, the parameters and the attempt, and tasks.runs records the outcome,
exactly as in the embedded mode.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterable

from celery import Celery, Task
from celery.signals import worker_process_init
from kombu import pools as kombu_pools

from . import publish, registry, runs

log = logging.getLogger(__name__)

_flask_app = None
_flask_lock = threading.Lock()


def flask_app():
    """Return the Flask app that Celery tasks and the beat run in, created on first use."""
    global _flask_app
    with _flask_lock:
        if _flask_app is None:
            from webapp import create_app

            _flask_app = create_app()
        return _flask_app


class FlaskTask(Task):
    """A Celery task that runs in the Flask app context (database session, config)."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with flask_app().app_context():
            return self.run(*args, **kwargs)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _limits(task_type: registry.TaskType) -> dict[str, Any]:
    """Return a task type's default retry and time-limit options."""
    options = task_type.options
    return {
        "max_retries": options.get("max_retries", 0),
        "soft_time_limit": options.get("soft_time_limit", 3600),
        "time_limit": options.get("time_limit", options.get("soft_time_limit", 3600) + 60),
        "retry_backoff": options.get("retry_backoff", 10),
    }


def create_celery(broker: str | None = None, backend: str | None = None) -> Celery:
    """Create the Celery app (broker from the environment by default) with every task type."""
    broker = broker or _env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    backend = backend or _env("CELERY_RESULT_BACKEND", broker)
    app = Celery("tasks", broker=broker, backend=backend, task_cls=FlaskTask)
    visibility = int(_env("CELERY_VISIBILITY_TIMEOUT", str(4 * 3600)))
    app.conf.update(
        task_routes={f"{queue}.*": {"queue": queue} for queue in registry.QUEUES},
        task_default_queue="system",
        task_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        task_ignore_result=True,
        # A task is acknowledged only once done: a killed worker's task is delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged task after this long: longer than any time limit.
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        # Workers send events (Flower's live view); the sender does not: a 'sent' event per
        # task would double the beat's publishing work, and the runs table records 'queued'.
        worker_send_task_events=True,
        beat_max_loop_interval=1,
        timezone="UTC",
    )
    # Run messages are pushed straight to Redis (tasks.publish) when the broker allows it,
    # unless CELERY_FAST_PUBLISH says false.
    app.fast_publish = (_env("CELERY_FAST_PUBLISH", "true").lower() not in ("0", "false", "no")
                        and publish.raw_capable(app))
    app._run_publisher = None
    for task_type in registry.load().values():
        _register(app, task_type)
    return app


def _register(app: Celery, task_type: registry.TaskType) -> None:
    """Register the Celery task that runs one task type."""
    limits = _limits(task_type)

    def run_task(self, run_id: int, max_retries: int | None = None, retry_backoff: int | None = None):
        retries = limits["max_retries"] if max_retries is None else max_retries
        backoff = limits["retry_backoff"] if retry_backoff is None else retry_backoff
        delivery = self.request.delivery_info or {}
        status = runs.execute(
            run_id,
            worker=self.request.hostname,
            attempt=self.request.retries + 1,
            can_retry=self.request.retries < retries,
            take_over=bool(delivery.get("redelivered")),
        )
        if status == "retry":
            countdown = min(backoff * 2 ** self.request.retries, 3600)
            raise self.retry(countdown=countdown, max_retries=retries)
        return status

    run_task.__name__ = task_type.name.replace(".", "_")
    run_task.__doc__ = task_type.description
    app.task(name=task_type.name, bind=True, soft_time_limit=limits["soft_time_limit"],
             time_limit=limits["time_limit"])(run_task)


def send_runs(app: Celery, queued: Iterable[Any]) -> int:
    """Send queued runs to their queues; return how many were sent.

    With a plain Redis broker the messages are built here and pushed in pipelined batches
    (tasks.publish); otherwise, or with CELERY_FAST_PUBLISH=false, through Celery's send_task.
    """
    items = []
    for run in queued:
        options = run_options(run)
        items.append((run.id, run.task, run.queue, options["soft_time_limit"], options["time_limit"],
                      options["kwargs"]))
    if not items:
        return 0
    if app.fast_publish:
        if app._run_publisher is None:
            app._run_publisher = publish.RedisPublisher(app)
        return app._run_publisher.publish(items)
    # kombu's publish batch pipelines the Redis writes (one round trip per 1000 messages).
    with app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for run_id, task, queue, soft, hard, kwargs in items:
            app.send_task(task, args=[run_id], kwargs=kwargs, queue=queue, routing_key=queue,
                          task_id=f"run-{run_id}", producer=producer, ignore_result=True,
                          soft_time_limit=soft, time_limit=hard)
    return len(items)


def reset_publisher(app: Celery) -> None:
    """Drop the app's broker connections: kombu's pools and the fast publisher's client."""
    try:
        kombu_pools.reset()  # closes and forgets kombu's global connection and producer pools
    except Exception:  # closing a broken connection may fail too; it is dropped anyway
        pass
    app._pool = None
    app.amqp._producer_pool = None
    close_publisher(app)


def close_publisher(app: Celery) -> None:
    """Close the fast publisher's Redis connections, if it has any."""
    publisher, app._run_publisher = app._run_publisher, None
    if publisher is not None:
        try:
            publisher.close()
        except Exception:  # a broken connection is dropped anyway
            pass


def run_options(run) -> dict[str, Any]:
    """Return the send options of a run: the job's overrides, else the task type's defaults."""
    task_type = registry.get(run.task)
    limits = _limits(task_type) if task_type else {"max_retries": 0, "soft_time_limit": 3600,
                                                   "time_limit": 3660, "retry_backoff": 10}
    overrides = run.limits or {}
    soft = overrides.get("soft_time_limit") or limits["soft_time_limit"]
    hard = overrides.get("time_limit") or max(limits["time_limit"], soft + 1)
    return {
        "soft_time_limit": soft,
        "time_limit": hard,
        "kwargs": {
            "max_retries": overrides.get("max_retries", limits["max_retries"]),
            # retry_backoff is not on the form; tests (and a future JSON import) may set it.
            "retry_backoff": overrides.get("retry_backoff", limits["retry_backoff"]),
        },
    }


@worker_process_init.connect
def _fresh_connections(**_kwargs):
    """Drop database connections inherited from the worker's parent process."""
    if _flask_app is not None:
        from webapp.extensions import db

        with _flask_app.app_context():
            db.engine.dispose(close=False)


celery = create_celery()
