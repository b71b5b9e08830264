"""Parsed secrets kept for ``credential_cache_ttl`` seconds: reads are one dict lookup without a lock (hot path)."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecordCache(Generic[K, V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were stored (0: nothing is kept)."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._items: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    def __setitem__(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._items) >= self.maxsize and key not in self._items:
                for old in [k for k, (until, _) in self._items.items() if until <= now]:
                    del self._items[old]
                while len(self._items) >= self.maxsize:  # oldest first (dicts keep insertion order)
                    del self._items[next(iter(self._items))]
            self._items.pop(key, None)
            self._items[key] = (now + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
