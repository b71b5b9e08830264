"""Token caches. A cache maps a key derived from everything that changes a token to that token,
and offers a per-key lock so that a cold key is minted once ("single flight")."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kong_secrets_backend.tokens import Token


class TokenCache(Protocol):
    def get(self, key: str) -> Token | None:
        """The cached token for key, or None (expired tokens are never returned)."""

    def put(self, key: str, token: Token) -> None: ...

    def lock(self, key: str, *, timeout: float) -> AbstractContextManager[bool]:
        """Hold the key's mint lock; yields False when it could not be had within timeout."""


def build_token_cache(mode: str) -> TokenCache:
    if mode == "memory":
        from kong_secrets_backend.cache.memory import PROCESS_TOKEN_CACHE

        return PROCESS_TOKEN_CACHE
    raise ValueError(f"unknown token_cache {mode!r}")  # parse_backend_kwargs refuses it first
