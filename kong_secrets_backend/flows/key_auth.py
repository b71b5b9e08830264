"""Kong's key-auth plugin: a static key, sent as is. Nothing is minted and nothing is cached.

``static = True`` tells the resolver to take the "token" straight from the flow rather than through the
token broker and its (possibly shared) cache: the key is already held, only in the credential.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kong_secrets_backend.tokens import Token

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import KeyAuth
    from kong_secrets_backend.transport.deadline import Deadline

# A key does not expire; the nominal lifetime only keeps Token's arithmetic finite.
STATIC_LIFETIME = 365 * 86400.0


class KeyAuthFlow:
    name = "key_auth"
    static = True

    def __init__(self, credential: KeyAuth) -> None:
        self.credential = credential
        self._cache_key = credential.cache_key()

    def __repr__(self) -> str:
        return f"KeyAuthFlow(header_name={self.credential.header_name!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def mint(self, deadline: Deadline) -> Token:
        now = time.time()
        return Token(value=self.credential.key, issued_at=now, expires_at=now + STATIC_LIFETIME, flow=self.name)
