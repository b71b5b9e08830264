"""Fixtures shared by the attack tests: an identity provider that answers whatever a test asks, a Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.redis import Redis, start_redis
from tests.attacks.answering_idp import AnsweringIdp, answering_idp
from tests.leak_scan import LEAKS


@pytest.fixture
def idp() -> Iterator[AnsweringIdp]:
    """A token endpoint on 127.0.0.1 whose answers each test sets."""
    with answering_idp() as running:
        yield running


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    """A password-protected redis-server on a free loopback port; its password is planted for the leak scan."""
    running = start_redis(tmp_path / "redis")
    LEAKS.plant(running.password)
    try:
        yield running
    finally:
        running.stop()
