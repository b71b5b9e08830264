"""The per-process token cache: one for the whole process, whichever backend instance Airflow built.

It sits in front of every ``token_cache`` mode (``memory`` is this cache alone): a hot resolution is one
dict lookup and one float comparison, without a lock. Each entry carries the time at which *this* process
should start refreshing it (jittered, see :meth:`~kong_secrets_backend.tokens.RefreshPolicy.refresh_at`)
and the time after which it must not be served any more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from kong_secrets_backend.tokens import Token, TokenState

MAX_ENTRIES = 16_384  # tokens held per process: far above a realistic working set (10,000 connections)


@dataclass(frozen=True)
class CachedToken:
    token: Token
    refresh_at: float  # start refreshing (advisory window, jittered per process)
    usable_until: float  # not served any more (mandatory window)

    def state(self, now: float) -> TokenState:
        if now < self.refresh_at:
            return TokenState.FRESH
        if now < self.usable_until:
            return TokenState.STALE
        return TokenState.INVALID


class MemoryTokenCache:
    """Tokens held until they expire, with a lock per key for single flight among the process's threads.

    Bounded, least recently used first: an evicted token is read again from the shared cache, or minted again.
    Below half its bound nothing can be evicted, so a hit is one plain dict read (the hot path) and the order is
    that of the last store; from half its bound on, the entries move to an ordered map and every hit records its
    use (:meth:`_entry_lru` replaces :meth:`entry`).
    """

    def __init__(self, maxsize: int = MAX_ENTRIES) -> None:
        self.maxsize = maxsize
        self._entries: dict[str, CachedToken] = {}
        self._lru = False
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenCache(entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: str) -> CachedToken | None:
        """The entry for key, expired or not (the hot path: a dict read, no lock)."""
        return self._entries.get(key)

    def _entry_lru(self, key: str) -> CachedToken | None:
        """:meth:`entry` once the cache is half full: the hit is recorded (atomic under the GIL, no lock)."""
        entries = cast("OrderedDict[str, CachedToken]", self._entries)
        entry = entries.get(key)
        if entry is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs several dict reads on the hot path
                entries.move_to_end(key)
            except KeyError:  # evicted meanwhile
                pass
        return entry

    def get(self, key: str) -> Token | None:
        """The cached token for key, or None (expired tokens are never returned)."""
        entry = self.entry(key)
        if entry is None or entry.token.expired():
            return None
        return entry.token

    def put(
        self, key: str, token: Token, *, refresh_at: float | None = None, usable_until: float | None = None
    ) -> CachedToken:
        entry = CachedToken(
            token,
            token.expires_at if refresh_at is None else refresh_at,
            token.expires_at if usable_until is None else usable_until,
        )
        with self._guard:
            entries = self._entries
            if self._lru:
                entries[key] = entry
                cast("OrderedDict[str, CachedToken]", entries).move_to_end(key)
                if len(entries) > self.maxsize:
                    self._evict()
            else:
                entries.pop(key, None)  # a plain dict keeps the order of the last store
                entries[key] = entry
                if len(entries) * 2 >= self.maxsize:
                    self._entries = OrderedDict(entries)
                    self._lru = True
                    self.entry = self._entry_lru  # type: ignore[method-assign]
        return entry

    def clear(self) -> None:
        with self._guard:
            self._entries = {}
            self._lru = False
            self.__dict__.pop("entry", None)  # back to the plain read

    def _evict(self) -> None:  # under self._guard, in LRU mode
        entries = cast("OrderedDict[str, CachedToken]", self._entries)
        while len(entries) > self.maxsize:  # least recently used first
            entries.popitem(last=False)
        if len(self._locks) > 2 * self.maxsize:  # locks of evicted keys, now and then
            for key in [k for k, lock in self._locks.items() if k not in entries and not lock.locked()]:
                del self._locks[key]

    @contextmanager
    def lock(self, key: str, *, timeout: float) -> Iterator[bool]:
        """Hold the key's mint lock; yields False when it could not be had within timeout (0: do not wait)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        acquired = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    def after_fork(self) -> None:
        """In a forked child: new locks (another thread may have held one at the fork); tokens stay valid."""
        self._guard = threading.Lock()
        self._locks = {}
