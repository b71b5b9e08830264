"""Token caches.

Every process keeps its tokens in :class:`~kong_secrets_backend.cache.memory.MemoryTokenCache` (the hot path).
With ``token_cache: "file"`` or a Redis URL, a *shared* cache sits behind it, so that the processes of a host
(``file``) or of the whole fleet (``redis``) mint one token per credential per token lifetime. Shared caches
implement :class:`TokenCache`: entries are sealed with a key only a holder of the credential can derive
(:mod:`~kong_secrets_backend.cache.sealing`), and a per-key lock lets one process mint while the others
wait and then read. A shared cache never raises: when it cannot be used, the caller mints for itself.
"""

from __future__ import annotations

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


def build_shared_cache(mode: str, directory: str | None = None) -> TokenCache | None:
    """A new shared cache client for a ``token_cache`` setting (None for ``memory``); no I/O here.

    The process keeps one per setting (:mod:`kong_secrets_backend.state`)."""
    if mode == "memory":
        return None
    if mode == "file":
        from kong_secrets_backend.cache.file import FileTokenCache, default_cache_dir

        return FileTokenCache(Path(directory).expanduser() if directory else default_cache_dir())
    if mode.startswith(("redis://", "rediss://")):
        from kong_secrets_backend.cache.redis import RedisTokenCache

        return RedisTokenCache(mode)
    raise ValueError("unknown token_cache mode")  # the settings refuse it first
