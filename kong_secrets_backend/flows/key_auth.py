"""``flow: key_auth``: a static API key for Kong's key-auth plugin, sent as is in ``header_name``.

The credential (:class:`KeyAuth`) is the key. Nothing is minted and nothing is cached: ``static = True``
tells the resolver to take the "token" straight from :class:`KeyAuthFlow` rather than through the token
broker and its (possibly shared) cache, since the key is already held, only in the credential.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows import FlowKind
from kong_secrets_backend.flows.fields import Fields
from kong_secrets_backend.flows.identity import local_token_key
from kong_secrets_backend.tokens import Token

if TYPE_CHECKING:
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

NAME = "key_auth"
DEFAULT_KEY_HEADER = "apikey"  # Kong key-auth's default key_names


@dataclass(frozen=True)
class KeyAuth:
    key: str = field(repr=False)
    header_name: str = DEFAULT_KEY_HEADER
    version: str | None = None
    consumer: str | None = None  # the Kong consumer's name, for the audit trail (the key never is)

    flow = NAME
    header_scheme = ""  # the header's value is the key itself

    def secret_values(self) -> tuple[str, ...]:
        return (self.key,)

    def cache_key(self) -> str:
        """The header and the version; never the key (nothing of key_auth is cached, but the rule holds)."""
        return "ka:" + hashlib.sha256(f"{self.header_name}\0{self.version}".encode()).hexdigest()


def parse(block: Mapping[str, Any], *, settings: Settings, version: str | None) -> KeyAuth:
    """The credential of a key_auth block: the key, checked to be a valid header value."""
    f = Fields(block, allowed=frozenset({"key", "consumer"}), flow=NAME)
    key = f.required_str("key")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in key):
        raise SecretFormatError("kong_auth.key must not contain spaces or control characters (it is a header value)")
    return KeyAuth(
        key=key, header_name=f.header_name(DEFAULT_KEY_HEADER), version=version, consumer=f.optional_str("consumer")
    )


# A key does not expire; the nominal lifetime only keeps Token's arithmetic finite.
STATIC_LIFETIME = 365 * 86400.0


class KeyAuthFlow:
    name = NAME
    static = True

    def __init__(self, credential: KeyAuth) -> None:
        self.credential = credential
        self._cache_key = credential.cache_key()
        self._token_key = local_token_key(self._cache_key, credential.key)

    def __repr__(self) -> str:
        return f"KeyAuthFlow(header_name={self.credential.header_name!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def token_key(self) -> str:
        return self._token_key

    def mint(self, deadline: Deadline) -> Token:
        now = time.time()
        return Token(value=self.credential.key, issued_at=now, expires_at=now + STATIC_LIFETIME, flow=self.name)


def build(credential: KeyAuth, *, http: HttpTransport, settings: Settings, source: SecretSource) -> TokenFlow:
    # A static flow has no cache_secret: it never reaches a token cache (the resolver checks ``static`` first).
    return cast("TokenFlow", KeyAuthFlow(credential))


# A key_auth key is a secret (a kong_jwt key is the credential's public identifier: it is in the token).
FLOW = FlowKind(name=NAME, parse=parse, build=build, static=KeyAuthFlow.static, secret_fields=("key",))
