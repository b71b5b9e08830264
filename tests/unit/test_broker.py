"""The broker with a stand-in flow (unit test of one module; the real IdP is in tests/integration)."""

from __future__ import annotations

import threading
import time

import pytest

from kong_secrets_backend.broker import TokenBroker
from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.deadline import Deadline
from kong_secrets_backend.errors import TokenEndpointError
from kong_secrets_backend.tokens import RefreshPolicy, Token


class CountingFlow:
    name = "test"

    def __init__(self, lifetime: float = 300, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0
        self.fail = False
        self._lock = threading.Lock()

    def cache_key(self) -> str:
        return "key"

    def mint(self, deadline: Deadline) -> Token:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise TokenEndpointError("idp down", reason="idp_unreachable")
        now = time.time()
        return Token(value=f"token-{self.calls}", issued_at=now, expires_at=now + self.lifetime)


def test_fresh_token_is_reused() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy()), CountingFlow()
    first = broker.token(flow, Deadline(5))
    assert broker.token(flow, Deadline(5)) is first
    assert flow.calls == 1


def test_concurrent_cold_resolutions_mint_once() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy()), CountingFlow(delay=0.2)
    barrier = threading.Barrier(32)
    results: list[str] = []

    def resolve() -> None:
        barrier.wait()
        results.append(broker.token(flow, Deadline(5)).value)

    threads = [threading.Thread(target=resolve) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flow.calls == 1
    assert set(results) == {"token-1"}


def test_token_in_advisory_window_is_served_when_refresh_fails() -> None:
    cache = MemoryTokenCache()
    broker, flow = TokenBroker(cache, RefreshPolicy(min_margin=60)), CountingFlow()
    now = time.time()
    old = Token(value="old-token", issued_at=now - 250, expires_at=now + 50)  # advisory: 50 < 60, usable: 50 > 12
    cache.put("key", old)
    flow.fail = True
    assert broker.token(flow, Deadline(5)) is old
    assert flow.calls == 1


def test_no_usable_token_and_failing_refresh_raises() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy()), CountingFlow()
    flow.fail = True
    with pytest.raises(TokenEndpointError):
        broker.token(flow, Deadline(5))


def test_advisory_refresh_replaces_the_token() -> None:
    cache = MemoryTokenCache()
    broker, flow = TokenBroker(cache, RefreshPolicy(min_margin=60)), CountingFlow()
    now = time.time()
    cache.put("key", Token(value="old-token", issued_at=now - 250, expires_at=now + 50))
    assert broker.token(flow, Deadline(5)).value == "token-1"
