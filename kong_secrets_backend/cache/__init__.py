"""Token caches.

Every process keeps its tokens in :class:`~kong_secrets_backend.cache.memory.MemoryTokenCache` (the hot path).
With ``token_cache: "file"`` or a Redis URL, a *shared* cache sits behind it, so that the processes of a host
(``file``) or of the whole fleet (``redis``) mint one token per credential per token lifetime. Shared caches
implement :class:`TokenCache`: entries are sealed with a key only a holder of the credential can derive
(:mod:`~kong_secrets_backend.cache.sealing`), and a per-key lock lets one process mint while the others
wait and then read. A shared cache never raises: when it cannot be used, the caller mints for itself.
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kong_secrets_backend.tokens import Token


class TokenCache(Protocol):
    """A token cache shared beyond one process. None of its methods raises."""

    def get(self, key: str, secret: bytes) -> Token | None:
        """The unexpired token cached for key and sealed with secret, or None (a miss, also on any error)."""

    def put(self, key: str, secret: bytes, token: Token) -> None:
        """Store token for key, sealed with secret, for the token's remaining life."""

    def lock(self, key: str, *, timeout: float, hold: float) -> AbstractContextManager[bool]:
        """Hold key's mint lock for at most ``hold`` seconds; yields False when it could not be had within
        ``timeout`` (0: do not wait), True when held or when there is nobody to coordinate with."""

    def after_fork(self) -> None:
        """Re-create locks, clients and connections in a forked child."""


_SHARED: dict[tuple[str, str], TokenCache] = {}
_SHARED_LOCK = threading.Lock()


def build_shared_cache(mode: str, directory: str | None = None) -> TokenCache | None:
    """The process-wide shared cache for a ``token_cache`` setting (None for ``memory``); no I/O here."""
    if mode == "memory":
        return None
    if mode == "file":
        from kong_secrets_backend.cache.file import default_cache_dir

        where = str(Path(directory).expanduser()) if directory else str(default_cache_dir())
    elif mode.startswith(("redis://", "rediss://")):
        where = mode
    else:  # parse_backend_kwargs refuses it first
        raise ValueError("unknown token_cache mode")
    with _SHARED_LOCK:
        cache = _SHARED.get((mode, where))
        if cache is None:
            if mode == "file":
                from kong_secrets_backend.cache.file import FileTokenCache

                cache = FileTokenCache(Path(where))
            else:
                from kong_secrets_backend.cache.redis import RedisTokenCache

                cache = RedisTokenCache(where)
            _SHARED[(mode, where)] = cache
        return cache


def _after_fork_in_child() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for cache in list(_SHARED.values()):
        cache.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
