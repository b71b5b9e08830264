"""Connections built from the same JSON, kept per backend: a hot resolution copies one instead of parsing it.

A Kong connection's JSON is the very same string object until its token (or correlation headers) change
(the resolver memoizes it), so the Connection Airflow would build from it is built once
and a shallow copy is handed out each time: every field of the task SDK's ``Connection`` is a string, an
int or None, so a copy is indistinguishable from a fresh ``from_json`` and callers never share an object.
The kept instance itself is never handed out. Only attrs classes (the task SDK's ``Connection``) are
copied this way; anything else (an ORM model) is built every time.
"""

from __future__ import annotations

import contextlib
import copy
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import Any

MAX_ENTRIES = 16_384  # connections kept per backend: far above a realistic working set (LRU beyond it)


@cache
def _copyable(conn_class: type) -> bool:
    try:
        import attrs

        return bool(attrs.has(conn_class))
    except ImportError:  # pragma: no cover - Airflow 3 depends on attrs
        return False


class ConnectionMemo:
    """Bounded, least recently used first (no lock: each step is atomic under the GIL, and a lost race only
    builds a connection once more). Below half its bound nothing can be evicted: a hit is one dict read, and
    recency is recorded from half its bound on."""

    def __init__(self, maxsize: int = MAX_ENTRIES) -> None:
        self.maxsize = maxsize
        self._built: OrderedDict[tuple[str, str | None], tuple[str, type, Any]] = OrderedDict()
        self._lru = False

    def connection(
        self, conn_id: str, team_name: str | None, value: str, conn_class: type, build: Callable[[], Any]
    ) -> Any:
        key = (conn_id, team_name)
        kept = self._built.get(key)
        if kept is not None and kept[0] is value and kept[1] is conn_class:
            if self._lru:
                try:  # noqa: SIM105 - contextlib.suppress costs several dict reads on the hot path
                    self._built.move_to_end(key)
                except KeyError:  # evicted meanwhile
                    pass
            return copy.copy(kept[2])
        conn = build()
        if not _copyable(conn_class):
            return conn
        self._built[key] = (value, conn_class, conn)
        self._lru = self._lru or len(self._built) * 2 >= self.maxsize
        with contextlib.suppress(KeyError):
            self._built.move_to_end(key)
            while len(self._built) > self.maxsize:
                self._built.popitem(last=False)
        return copy.copy(conn)
