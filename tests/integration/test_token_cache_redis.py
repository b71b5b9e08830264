"""The Redis token cache against a real redis-server (Debian's): locks, TTLs, outages, a wrong password."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.redis import Redis, start_redis
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.cache import redis as redis_cache
from kong_secrets_backend.cache.redis import RedisTokenCache
from kong_secrets_backend.tokens import Token
from tests.conftest import assert_no_secrets

KEY, SECRET = "cc:redis-test", b"cc:redis-test\0client-secret-value-77\0"


def token(lifetime: float = 300, value: str = "token-in-redis") -> Token:
    now = time.time()
    return Token(value=value, issued_at=now, expires_at=now + lifetime)


def test_entries_are_sealed_and_live_as_long_as_the_token(redis_server: Redis) -> None:
    cache = RedisTokenCache(redis_server.url)
    cache.put(KEY, SECRET, token(lifetime=2))
    (key,) = redis_server.keys()
    assert b"token-in-redis" not in redis_server.client().get(key)
    assert 1000 < redis_server.client().pttl(key) <= 2000
    assert RedisTokenCache(redis_server.url).get(KEY, SECRET).value == "token-in-redis"  # type: ignore[union-attr]
    assert RedisTokenCache(redis_server.url).get(KEY, b"another credential") is None


def test_the_lock_is_single_flight_across_hosts_and_expires_with_a_dead_holder(redis_server: Redis) -> None:
    host_a, host_b = RedisTokenCache(redis_server.url), RedisTokenCache(redis_server.url)
    held = host_a.lock(KEY, timeout=0, hold=0.5)
    assert held.__enter__()  # and never released: the holder "dies"
    with host_b.lock(KEY, timeout=0, hold=5) as acquired:
        assert not acquired
    started = time.monotonic()
    with host_b.lock(KEY, timeout=2, hold=5) as acquired:
        assert acquired
    assert 0.2 < time.monotonic() - started < 1.0  # PX expired the dead holder's lock


def test_a_wrong_password_mints_locally_with_one_warning_and_no_password_in_the_log(
    stack: Stack, redis_server: Redis, fresh_process_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:wrong-redis-pw-3141@{redis_server.host}:{redis_server.port}/0"
    conn_ids = [f"redis_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for conn_id in conn_ids:
        stack.put(f"connections/{conn_id}", stack.kong_connection())
    backend = KongSecretsBackend(**stack.backend_kwargs(token_cache=url, credential_cache_ttl=0))
    backend._set_connection_class(Connection)
    with caplog.at_level(logging.DEBUG):
        for conn_id in conn_ids:
            assert backend.get_connection(conn_id) is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()]
    assert len(warnings) == 1 and "AuthenticationError" in warnings[0].getMessage()
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), "wrong-redis-pw-3141", redis_server.password])


def test_after_an_outage_the_cache_is_used_again(
    redis_server: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_cache, "RETRY_AFTER", 0.1)
    cache = RedisTokenCache(redis_server.url)
    cache.put(KEY, SECRET, token())
    redis_server.kill()
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend"):
        assert cache.get(KEY, SECRET) is None  # down: a miss, not an error
        with cache.lock(KEY, timeout=1, hold=1) as acquired:
            assert acquired  # nobody to coordinate with: the caller mints
        back = start_redis(tmp_path / "redis-again", password=redis_server.password, port=redis_server.port)
        try:
            time.sleep(0.15)
            cache.put(KEY, SECRET, token(value="after-the-outage"))
            assert cache.get(KEY, SECRET).value == "after-the-outage"  # type: ignore[union-attr]
        finally:
            back.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unavailable" in m for m in messages) == 1 and any("available again" in m for m in messages)
