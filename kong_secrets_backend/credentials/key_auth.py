"""``flow: key_auth``: a static API key for Kong's key-auth plugin, sent as is in ``header_name``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.credentials.fields import Fields
from kong_secrets_backend.errors import SecretFormatError

DEFAULT_KEY_HEADER = "apikey"  # Kong key-auth's default key_names


@dataclass(frozen=True)
class KeyAuth:
    key: str = field(repr=False)
    header_name: str = DEFAULT_KEY_HEADER
    version: str | None = None

    flow = "key_auth"
    header_scheme = ""  # the header's value is the key itself

    def secret_values(self) -> tuple[str, ...]:
        return (self.key,)

    def cache_key(self) -> str:
        return "ka:" + hashlib.sha256(f"{self.header_name}\0{self.key}\0{self.version}".encode()).hexdigest()


def parse_key_auth(block: Mapping[str, Any], *, version: str | None) -> KeyAuth:
    f = Fields(block, allowed=frozenset({"key"}), flow="key_auth")
    key = f.required_str("key")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in key):
        raise SecretFormatError("kong_auth.key must not contain spaces or control characters (it is a header value)")
    return KeyAuth(key=key, header_name=f.header_name(DEFAULT_KEY_HEADER), version=version)
