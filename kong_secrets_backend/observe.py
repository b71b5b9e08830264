"""In-process observers of resolutions: what a Kong resolution read and obtained, for tools like ``check``.

The resolver reports each Kong resolution with :func:`resolved`; it costs one context-variable lookup when
nobody observes. An observer sees the secret's path and version, the flow, the auth header's name and the
:class:`~kong_secrets_backend.tokens.Token` (whose value never appears in its repr); it must not log the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kong_secrets_backend.tokens import Token


@dataclass(frozen=True)
class Resolution:
    conn_id: str
    path: str
    version: str | None
    flow: str
    header_name: str
    token: Token


_OBSERVER: ContextVar[list[Resolution] | None] = ContextVar("kong_secrets_backend_observer", default=None)


def resolved(conn_id: str, path: str, version: str | None, flow: str, header_name: str, token: Token) -> None:
    """Called by the resolver after each Kong resolution."""
    seen = _OBSERVER.get()
    if seen is not None:
        seen.append(Resolution(conn_id, path, version, flow, header_name, token))


@contextmanager
def observing() -> Iterator[list[Resolution]]:
    """Collect the Kong resolutions made in this block (this thread / asyncio task)."""
    seen: list[Resolution] = []
    token = _OBSERVER.set(seen)
    try:
        yield seen
    finally:
        _OBSERVER.reset(token)
