"""conn_ids and keys become path segments: refuse any that would leave the configured path."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

from kong_secrets_backend.errors import SecretIdError

_MAX_LENGTH = 512


def validate_secret_id(secret_id: str, *, kind: str = "conn_id") -> str:
    """Return secret_id unchanged if it is safe to join under a base path, else raise SecretIdError."""
    if not isinstance(secret_id, str):
        _check(secret_id, kind)  # raises
    _checked(secret_id, kind)  # hot path: ids already checked by this process are remembered (bounded)
    return secret_id


@lru_cache(maxsize=16_384)  # only ids that passed are cached (a refusal raises)
def _checked(secret_id: str, kind: str) -> None:
    _check(secret_id, kind)


def _check(secret_id: str, kind: str) -> None:
    """Refused before any request is made: empty ids, a leading ``/``, ``.``/``..`` segments (also
    percent-encoded), backslashes, and control or other non-printable characters.
    """
    if not isinstance(secret_id, str) or not secret_id:
        raise SecretIdError(f"{kind} is empty")
    if len(secret_id) > _MAX_LENGTH:
        raise SecretIdError(f"{kind} is longer than {_MAX_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in secret_id):
        raise SecretIdError(f"{kind} contains control or non-printable characters")
    decoded = secret_id
    for _ in range(3):  # %252e%252e and friends
        decoded = unquote(decoded)
    if decoded.startswith("/") or "\\" in decoded:
        raise SecretIdError(f"{kind} must not start with '/' or contain '\\'")
    if any(segment in (".", "..") for segment in re.split(r"/", decoded)):
        raise SecretIdError(f"{kind} must not contain '.' or '..' path segments")
    if any(unicodedata.category(ch).startswith("C") for ch in decoded):
        raise SecretIdError(f"{kind} contains encoded control characters")
