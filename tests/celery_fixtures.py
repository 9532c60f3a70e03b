"""Fixtures of the Celery-mode tests: a private Redis, a stack of real workers and beats."""

from __future__ import annotations

import itertools

import pytest

from tests.processes import CeleryStack, RedisServer

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Start a private Redis for the session; stop it afterwards."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def new_stack(tmp_path_factory, redis_server) -> CeleryStack:
    """Return a stack on a fresh database and its own Redis database number."""
    stack = CeleryStack(tmp_path_factory.mktemp("stack"), redis_server, next(_db_numbers))
    stack.instance.mkdir()
    stack.flask("db", "upgrade")
    return stack
