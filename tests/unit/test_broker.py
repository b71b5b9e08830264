"""The broker with a stand-in flow and a stand-in shared cache (unit test of one module).

The real IdP, the real file cache and a real redis-server are in tests/integration/test_token_cache_*.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.errors import TokenEndpointError
from kong_secrets_backend.tokens import RefreshPolicy, Token
from kong_secrets_backend.tokens.broker import RETRY_AFTER_FAILED_REFRESH, TokenBroker
from kong_secrets_backend.transport.deadline import Deadline


class CountingFlow:
    name = "test"
    static = False

    def __init__(self, lifetime: float = 300, delay: float = 0.0, secret: bytes | None = b"key\0s3cret") -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0
        self.fail = False
        self.secret = secret
        self._lock = threading.Lock()

    def cache_key(self) -> str:
        return "key"

    def cache_secret(self) -> bytes | None:
        return self.secret

    def mint(self, deadline: Deadline) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        if self.fail:
            raise TokenEndpointError("idp down", reason="idp_unreachable")
        now = time.time()
        return Token(value=f"token-{n}", issued_at=now, expires_at=now + self.lifetime)


class DictSharedCache:
    """What another process or host would see: a dict and a lock that may be held by somebody else."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, Token]] = {}
        self.held = threading.Lock()
        self.puts = 0

    def get(self, key: str, secret: bytes) -> Token | None:
        found = self.entries.get(key)
        if found is None or found[0] != secret or found[1].expired():
            return None
        return found[1]

    def put(self, key: str, secret: bytes, token: Token) -> None:
        self.entries[key] = (secret, token)
        self.puts += 1

    @contextmanager
    def lock(self, key: str, *, timeout: float, hold: float) -> Iterator[bool]:
        acquired = self.held.acquire(timeout=timeout) if timeout > 0 else self.held.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self.held.release()

    def after_fork(self) -> None:
        pass


def token(remaining: float, lifetime: float = 300, value: str = "old-token") -> Token:
    now = time.time()
    return Token(value=value, issued_at=now + remaining - lifetime, expires_at=now + remaining)


def remember(broker: TokenBroker, tok: Token) -> None:
    broker._remember("key", tok)


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


def test_token_in_advisory_window_is_served_when_refresh_fails_and_the_idp_is_not_asked_again_at_once() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0)), CountingFlow()
    old = token(remaining=50)  # advisory: 50 < 60, usable: 50 > 12
    remember(broker, old)
    flow.fail = True
    assert broker.token(flow, Deadline(5)) is old
    assert broker.token(flow, Deadline(5)) is old
    assert flow.calls == 1  # the next attempt waits RETRY_AFTER_FAILED_REFRESH
    assert broker.cache.entry("key").refresh_at <= time.time() + RETRY_AFTER_FAILED_REFRESH  # type: ignore[union-attr]


def test_no_usable_token_and_failing_refresh_raises() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy()), CountingFlow()
    flow.fail = True
    with pytest.raises(TokenEndpointError):
        broker.token(flow, Deadline(5))


def test_token_in_mandatory_window_is_not_served() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0)), CountingFlow()
    remember(broker, token(remaining=5))  # mandatory margin is 12 s
    assert broker.token(flow, Deadline(5)).value == "token-1"


def test_advisory_refresh_replaces_the_token() -> None:
    broker, flow = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0)), CountingFlow()
    remember(broker, token(remaining=50))
    assert broker.token(flow, Deadline(5)).value == "token-1"


def test_a_token_in_the_shared_cache_is_served_without_minting() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    shared.put("key", flow.secret, token(remaining=280, value="from-another-process"))  # type: ignore[arg-type]
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    assert broker.token(flow, Deadline(5)).value == "from-another-process"
    assert broker.token(flow, Deadline(5)).value == "from-another-process"
    assert flow.calls == 0


def test_a_minted_token_is_written_to_the_shared_cache() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    minted = broker.token(flow, Deadline(5))
    assert shared.get("key", flow.secret) is minted  # type: ignore[arg-type]


def test_a_newer_shared_token_replaces_a_stale_local_one() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0), shared=shared)
    remember(broker, token(remaining=50))  # this process is in its advisory window
    shared.put("key", flow.secret, token(remaining=290, value="refreshed-elsewhere"))  # type: ignore[arg-type]
    assert broker.token(flow, Deadline(5)).value == "refreshed-elsewhere"
    assert flow.calls == 0


def test_advisory_window_while_another_process_refreshes_serves_the_current_token() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0), shared=shared)
    old = token(remaining=50)
    remember(broker, old)
    with shared.lock("key", timeout=0, hold=5):  # somebody else holds the shared lock
        assert broker.token(flow, Deadline(5)) is old
    assert flow.calls == 0


def test_cold_resolution_waits_for_the_minting_process_then_reads_its_token() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    holding = threading.Event()

    def other_process() -> None:
        with shared.lock("key", timeout=0, hold=5):
            holding.set()
            time.sleep(0.3)
            shared.put("key", flow.secret, token(remaining=300, value="minted-elsewhere"))  # type: ignore[arg-type]

    t = threading.Thread(target=other_process)
    t.start()
    holding.wait()
    assert broker.token(flow, Deadline(5)).value == "minted-elsewhere"
    t.join()
    assert flow.calls == 0


def test_a_stuck_lock_holder_delays_but_does_not_fail_a_resolution() -> None:
    shared, flow = DictSharedCache(), CountingFlow()
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    shared.held.acquire()  # held and never released
    started = time.monotonic()
    assert broker.token(flow, Deadline(1)).value == "token-1"
    assert 0.4 <= time.monotonic() - started < 1.0  # waited half the deadline, then minted
    assert flow.calls == 1


def test_a_flow_without_a_cache_secret_keeps_its_tokens_in_the_process() -> None:
    shared, flow = DictSharedCache(), CountingFlow(secret=None)
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    broker.token(flow, Deadline(5))
    assert shared.puts == 0 and flow.calls == 1


def test_jittered_refresh_points_spread_processes_over_the_advisory_window() -> None:
    policy = RefreshPolicy(min_margin=60, jitter=0.5)
    tok = token(remaining=300)
    points = [policy.refresh_at(tok) for _ in range(200)]
    assert all(tok.expires_at - 90 <= p <= tok.expires_at - 60 for p in points)
    assert max(points) - min(points) > 20  # not in lockstep
