"""Connections built from the same JSON, kept per backend: a hot resolution copies one instead of parsing it.

A Kong connection's JSON is the very same string object until its token (or correlation headers) change
(the resolver memoizes it), so the Connection Airflow would build from it is built once
and a shallow copy is handed out each time: every field of the task SDK's ``Connection`` is a string, an
int or None, so a copy is indistinguishable from a fresh ``from_json`` and callers never share an object.
The kept instance itself is never handed out. Only attrs classes (the task SDK's ``Connection``) are
copied this way; anything else (an ORM model) is built every time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

_MAX_ENTRIES = 1024


@cache
def _copyable(conn_class: type) -> bool:
    try:
        import attrs

        return bool(attrs.has(conn_class))
    except ImportError:  # pragma: no cover - Airflow 3 depends on attrs
        return False


class ConnectionMemo:
    def __init__(self) -> None:
        self._built: dict[tuple[str, str | None], tuple[str, type, Any]] = {}

    def connection(
        self, conn_id: str, team_name: str | None, value: str, conn_class: type, build: Callable[[], Any]
    ) -> Any:
        key = (conn_id, team_name)
        kept = self._built.get(key)
        if kept is not None and kept[0] is value and kept[1] is conn_class:
            return copy.copy(kept[2])
        conn = build()
        if not _copyable(conn_class):
            return conn
        if len(self._built) >= _MAX_ENTRIES:
            self._built.clear()
        self._built[key] = (value, conn_class, conn)
        return copy.copy(conn)
