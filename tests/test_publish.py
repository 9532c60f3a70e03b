"""The fast publisher writes exactly the messages Celery's send_task writes, in the same lists."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from tasks.celery_app import create_celery, send_runs
from tasks.publish import raw_capable
from tasks.runs import QueuedRun
from tests.celery_fixtures import redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

RUNS = [
    QueuedRun(11, 1, "collect.http_get", "collect", None),
    QueuedRun(12, 2, "report.runs_csv", "report", {"soft_time_limit": 30, "max_retries": 2}),
    QueuedRun(13, 3, "system.sleep", "system", {"time_limit": 99, "retry_backoff": 5}),
    QueuedRun(14, 1, "collect.http_get", "collect", None),
]
# Unique per message or per process, so not compared.
VARYING_PROPERTIES = ("delivery_tag", "reply_to")


def drain(client: redis.Redis) -> dict[str, list[dict]]:
    """Pop every message of every queue list, in the order a worker would take them."""
    out = {}
    for queue in ("collect", "report", "etl", "system"):
        items = []
        while (raw := client.rpop(queue)) is not None:
            items.append(json.loads(raw))
        out[queue] = items
    return out


def comparable(message: dict) -> dict:
    properties = {k: v for k, v in message["properties"].items() if k not in VARYING_PROPERTIES}
    body = json.loads(base64.b64decode(message["body"]))
    return {**message, "properties": properties, "body": body}


def send_both_ways(broker_url: str, fast: bool) -> dict[str, list[dict]]:
    app = create_celery(broker_url)
    app.fast_publish = fast
    try:
        assert send_runs(app, RUNS) == len(RUNS)
        return drain(redis.Redis.from_url(broker_url))
    finally:
        app.close()


def test_fast_messages_equal_celerys_own(redis_server):  # noqa: F811
    url = f"{redis_server.url}/62"
    celerys = send_both_ways(url, fast=False)
    ours = send_both_ways(url, fast=True)
    assert {q: len(m) for q, m in ours.items()} == {"collect": 2, "report": 1, "etl": 0, "system": 1}
    for queue in ours:
        assert [comparable(m) for m in ours[queue]] == [comparable(m) for m in celerys[queue]], queue
    # In arrival order within a queue, with the job's limits in the headers and kwargs.
    assert [m["headers"]["id"] for m in ours["collect"]] == ["run-11", "run-14"]
    report = ours["report"][0]
    assert report["headers"]["timelimit"][1] == 30  # [hard, soft], soft from the job
    assert json.loads(base64.b64decode(report["body"]))[1]["max_retries"] == 2
    assert len({m["properties"]["delivery_tag"] for q in ours.values() for m in q}) == len(RUNS)


def test_brokers_it_cannot_write_use_celerys_path():
    assert raw_capable(create_celery("redis://127.0.0.1:1/0"))
    assert not raw_capable(create_celery("amqp://guest@127.0.0.1:1//"))
    prefixed = create_celery("redis://127.0.0.1:1/0")
    prefixed.conf.broker_transport_options = {"global_keyprefix": "x:"}
    assert not raw_capable(prefixed)
