"""conn_ids and keys become path segments: refuse any that would leave the configured path."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from kong_secrets_backend.errors import SecretIdError

_MAX_LENGTH = 512


def validate_secret_id(secret_id: str, *, kind: str = "conn_id") -> str:
    """Return secret_id unchanged if it is safe to join under a base path, else raise SecretIdError."""
    if secret_id in _valid:  # hot path: ids already checked by this process
        return secret_id
    _check(secret_id, kind)
    if len(_valid) < _MAX_REMEMBERED:
        _valid.add(secret_id)
    return secret_id


_valid: set[str] = set()
_MAX_REMEMBERED = 10_000


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
