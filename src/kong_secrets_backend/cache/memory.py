"""The per-process token cache: one for the whole process, whichever backend instance Airflow built."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cachetools import TLRUCache

from kong_secrets_backend.tokens import Token

_MAX_ENTRIES = 4096


def _time_to_use(_key: str, token: Token, now: float) -> float:
    return token.expires_at


class MemoryTokenCache:
    """Tokens held until they expire (cachetools' TLRU), with a lock per key for single flight."""

    def __init__(self, maxsize: int = _MAX_ENTRIES) -> None:
        self._tokens: TLRUCache[str, Token] = TLRUCache(maxsize=maxsize, ttu=_time_to_use, timer=time.time)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenCache(entries={len(self._tokens)})"

    def get(self, key: str) -> Token | None:
        with self._guard:
            return self._tokens.get(key)

    def put(self, key: str, token: Token) -> None:
        with self._guard:
            self._tokens[key] = token

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()

    @contextmanager
    def lock(self, key: str, *, timeout: float) -> Iterator[bool]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        acquired = lock.acquire(timeout=max(0.0, timeout)) if timeout > 0 else lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()


PROCESS_TOKEN_CACHE = MemoryTokenCache()
