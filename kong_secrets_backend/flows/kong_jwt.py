"""Kong's jwt plugin: the backend signs the token itself with the consumer's jwt credential; no IdP involved.

The key goes in ``key_claim_name`` (default ``iss``, Kong's default), ``iat`` is now, ``exp`` is now + ttl
(already capped below the plugin's ``maximum_expiration``), ``nbf`` = ``iat`` when asked for, plus any
extra ``claims``. The broker caches the signed token and re-signs it ahead of expiry like any other token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.flows import jws
from kong_secrets_backend.tokens import Token, claims_summary

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import KongJwt
    from kong_secrets_backend.transport.deadline import Deadline


class KongJwtFlow:
    name = "kong_jwt"
    static = False

    def __init__(self, credential: KongJwt) -> None:
        self.credential = credential
        self._cache_key = credential.cache_key()

    def __repr__(self) -> str:
        cred = self.credential
        return f"KongJwtFlow({cred.key_claim_name}={cred.key!r}, algorithm={cred.algorithm!r}, ttl={cred.ttl:g})"

    def cache_key(self) -> str:
        return self._cache_key

    def cache_secret(self) -> bytes:
        """Sealing material for shared token caches: only a holder of the consumer's secret or key has it."""
        cred = self.credential
        return "\0".join((self._cache_key, cred.secret or "", cred.private_key or "")).encode()

    def claims(self, now: float) -> dict[str, Any]:
        cred = self.credential
        issued = int(now)
        claims: dict[str, Any] = dict(cred.claims)
        claims[cred.key_claim_name] = cred.key
        claims["iat"] = issued
        claims["exp"] = issued + int(cred.ttl)
        if cred.nbf:
            claims["nbf"] = issued
        return claims

    def mint(self, deadline: Deadline) -> Token:
        now = time.time()
        claims = self.claims(now)
        value = jws.encode(claims, self.credential.signing_key)
        summary = claims_summary(claims)
        summary.setdefault(self.credential.key_claim_name, self.credential.key)
        return Token(value=value, issued_at=now, expires_at=float(claims["exp"]), flow=self.name, claims=summary)
