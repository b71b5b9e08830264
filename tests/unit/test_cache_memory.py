"""The per-process cache, and fork safety (Celery prefork): a child never inherits a lock held by a vanished thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.settings import parse_backend_kwargs
from kong_secrets_backend.state import PROCESS, reset_runtimes, runtime_for
from kong_secrets_backend.tokens import Token


def token(lifetime: float = 300, value: str = "tok-value") -> Token:
    now = time.time()
    return Token(value=value, issued_at=now, expires_at=now + lifetime)


def test_entries_carry_their_refresh_points_and_expired_tokens_are_not_returned() -> None:
    cache = MemoryTokenCache()
    tok = token()
    entry = cache.put("k", tok, refresh_at=tok.expires_at - 70, usable_until=tok.expires_at - 12)
    assert cache.entry("k") is entry and cache.get("k") is tok
    cache.put("old", Token(value="old-value", issued_at=0, expires_at=1))
    assert cache.get("old") is None


def test_the_cache_is_bounded() -> None:
    cache = MemoryTokenCache(maxsize=3)
    for i in range(10):
        cache.put(f"k{i}", token(value=f"v{i}"))
    assert [k for k in ("k7", "k8", "k9") if cache.get(k)] == ["k7", "k8", "k9"]
    assert cache.get("k0") is None


def _in_forked_child(check: Callable[[], bool]) -> bool:
    """Run check in a forked child; True when it returned True within 5 s."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return False


def _held_by_a_thread(enter: Callable[[], object], exit_: Callable[[], object]) -> threading.Event:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        enter()
        held.set()
        release.wait(10)
        exit_()

    threading.Thread(target=hold, daemon=True).start()
    held.wait(5)
    return release


def test_a_forked_child_can_take_a_mint_lock_a_parent_thread_held_at_the_fork() -> None:
    cache = PROCESS.tokens  # the process-wide cache, renewed by the one at-fork reset
    cm = cache.lock("k", timeout=1)
    release = _held_by_a_thread(cm.__enter__, lambda: cm.__exit__(None, None, None))
    try:

        def child() -> bool:
            with cache.lock("k", timeout=1) as acquired:
                return acquired

        assert _in_forked_child(child)
    finally:
        release.set()


def test_a_forked_child_gets_new_runtime_locks_and_http_session() -> None:
    reset_runtimes()
    runtime = runtime_for(parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t0ken-fork"}))
    session = runtime.http._get_session()
    release = _held_by_a_thread(runtime.records._lock.acquire, runtime.records._lock.release)
    try:

        def child() -> bool:
            got = runtime.records._lock.acquire(timeout=1)
            return got and runtime.http._get_session() is not session

        assert _in_forked_child(child)
    finally:
        release.set()
        reset_runtimes()
