"""Sealing tokens for the caches shared beyond one process (``file``, ``redis``): AES-256-GCM, key from the credential.

- The key is HKDF-SHA256 over the flow's ``cache_secret()`` (its cache key *and* its client secret or
  private key), with the cache key as HKDF info: only a holder of the credential can derive it. The cache
  key digest that names an entry is not enough (it is a SHA-256 of the material, not the material).
- The entry's name is bound as associated data, so an entry copied under another name does not open.
- A fresh 96-bit random nonce per entry; the blob is ``KSB1 || nonce || ciphertext+tag``.
- Anything that does not open (corrupt, truncated, foreign, another credential, another format) is None:
  the caller treats it as a miss and replaces it.

``cryptography`` is imported on first use, so that a ``memory`` user never loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from typing import Any

from kong_secrets_backend.tokens import Token

MAGIC = b"KSB1"
_NONCE = 12
_SALT = b"kong-secrets-backend/token-cache/v1"
MAX_BLOB = 64 * 1024  # a sealed token is a few KiB at most; anything larger is not ours


def entry_name(key: str) -> str:
    """A filesystem- and Redis-safe name for a cache key (hex), revealing nothing but identity."""
    return hashlib.sha256(f"kong-secrets-backend:{key}".encode()).hexdigest()[:48]


@lru_cache(maxsize=16_384)  # one per credential in use: at least 10,000 connections without re-deriving
def _aead(secret: bytes, key: str) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=key.encode()).derive(secret)
    return AESGCM(derived)


def seal(token: Token, *, key: str, secret: bytes) -> bytes:
    payload = {
        "value": token.value,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "flow": token.flow,
        "claims": dict(token.claims),
        "kid": token.kid,
    }
    plaintext = json.dumps(payload, separators=(",", ":"), default=str).encode()
    nonce = os.urandom(_NONCE)
    return MAGIC + nonce + _aead(secret, key).encrypt(nonce, plaintext, _aad(key))


def unseal(blob: bytes | None, *, key: str, secret: bytes) -> Token | None:
    """The token sealed in blob for this key and secret, or None when it is not one (never raises)."""
    if not blob or len(blob) > MAX_BLOB or not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _NONCE + 16:
        return None
    nonce = blob[len(MAGIC) : len(MAGIC) + _NONCE]
    try:
        plaintext = _aead(secret, key).decrypt(nonce, blob[len(MAGIC) + _NONCE :], _aad(key))
        payload = json.loads(plaintext)
        return Token(
            value=str(payload["value"]),
            issued_at=float(payload["issued_at"]),
            expires_at=float(payload["expires_at"]),
            flow=str(payload.get("flow") or ""),
            claims=dict(payload.get("claims") or {}),
            kid=payload.get("kid"),
        )
    except Exception:  # InvalidTag, bad JSON, missing fields: not an entry of ours for this credential
        return None


def _aad(key: str) -> bytes:
    return MAGIC + entry_name(key).encode()


__all__ = ["MAX_BLOB", "entry_name", "seal", "unseal"]
