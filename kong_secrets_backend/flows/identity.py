"""The two identities of a flow's tokens: the shared one (``cache_key``) and the in-process one (``token_key``).

- ``cache_key()`` names a token wherever it may be seen from outside the process: the file cache's entry
  names, Redis keys. It is built from non-secret identity only (flow, endpoint, client, scope, audience,
  public key, the source's version of the secret), never from a secret or a hash of one: whoever can list
  the cache learns which clients have tokens, nothing that helps guess a secret. Two credentials that
  differ only in their secret (same identity, same version) share the name; their entries are sealed with
  keys derived from their own secrets (:mod:`kong_secrets_backend.cache.sealing`), so one's entry does not
  open for the other: a miss, and a mint.
- ``token_key()`` keys the process's own maps (the memory token cache, the rotation logic): the cache key
  plus a keyed digest of the secret material, under a random key drawn once per process and never stored,
  so that tokens of two secrets are never confused in memory either, and a secret that changes without a
  new version still counts as a rotation. It never leaves the process and is worthless outside it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

_PROCESS_KEY = os.urandom(32)  # drawn at import; a forked child keeps it (its tokens are the parent's)


def local_token_key(cache_key: str, secret: bytes | str | None) -> str:
    """``cache_key`` plus, when there is secret material, a process-keyed digest of it (in-process use only)."""
    if not secret:
        return cache_key
    material = secret.encode() if isinstance(secret, str) else secret
    return cache_key + "#" + hmac.new(_PROCESS_KEY, material, hashlib.sha256).hexdigest()[:32]


def token_key(flow: object) -> str:
    """A flow's in-process token identity: its ``token_key()``, or its ``cache_key()`` for a flow without one."""
    method = getattr(flow, "token_key", None)
    key: str = method() if method is not None else flow.cache_key()  # type: ignore[attr-defined]
    return key


__all__ = ["local_token_key", "token_key"]
