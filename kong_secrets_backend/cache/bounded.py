"""A bounded LRU map with an optional time to live: what every in-process map of the backend is built on."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A thread-safe LRU map with an optional time to live.

    Reads take no lock (the hot path: one dict lookup, one comparison); writes and evictions do. Reads mark an
    entry as recently used once the map is half full (below that nothing can be evicted).
    ``ttl=0`` keeps nothing; ``ttl=None`` keeps entries until they are evicted.
    """

    def __init__(self, maxsize: int, ttl: float | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        self.clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._recency_from = maxsize // 2  # below half full nothing is evicted: reads need not reorder

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or (self.ttl is not None and item[0] <= self.clock()):
            return None
        if len(self._items) > self._recency_from:  # recency only matters once eviction is near (hot path)
            try:  # noqa: SIM105 (cheaper than contextlib.suppress)
                self._items.move_to_end(key)  # atomic under the GIL; the key may have just been evicted
            except KeyError:
                pass
        return item[1]

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._store(key, value)

    def _store(self, key: K, value: V) -> None:  # under self._lock
        if self.ttl is not None and self.ttl <= 0:
            return
        self._items[key] = (float("inf") if self.ttl is None else self.clock() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:  # least recently used first
            self._items.popitem(last=False)

    def add(self, key: K, value: V) -> bool:
        """Store value unless key is present (and unexpired); True when it was stored."""
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] > self.clock():
                return False
            self._store(key, value)
        return True

    def pop(self, key: K) -> V | None:
        with self._lock:
            item = self._items.pop(key, None)
        return None if item is None else item[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
