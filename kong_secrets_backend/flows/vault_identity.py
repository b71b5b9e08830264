"""Vault identity tokens: Vault signs an OIDC token for the backend's own identity (``identity/oidc/token/<role>``).

No client secret exists anywhere: the backend's Vault login is the credential. The token is checked
against Vault's JWKS (cached with a TTL, fetched again once when a key id is unknown, as after a key
rotation) and its expiry is read from its ``exp`` claim.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from cachetools import TTLCache

from kong_secrets_backend.errors import SourceError
from kong_secrets_backend.flows import jws
from kong_secrets_backend.masking import mask
from kong_secrets_backend.tokens import Token, claims_summary

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import VaultIdentity
    from kong_secrets_backend.transport.deadline import Deadline

JWKS_TTL = 300.0
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")

_JWKS: TTLCache[str, dict[str, Any]] = TTLCache(maxsize=32, ttl=JWKS_TTL)
_JWKS_LOCK = threading.Lock()


class IdentityTokenSigner(Protocol):
    """What the flow needs from the Vault source."""

    def sign_identity_token(self, role: str, deadline: Deadline) -> str: ...

    def identity_jwks(self, deadline: Deadline) -> dict[str, Any]: ...


class VaultIdentityFlow:
    name = "vault_identity"
    static = False

    def __init__(self, credential: VaultIdentity, signer: IdentityTokenSigner, *, identity: str) -> None:
        """identity: a fingerprint of the backend settings (who logs in to Vault): part of the cache key."""
        self.credential = credential
        self.signer = signer
        self.identity = identity
        self._cache_key = credential.cache_key() + ":" + hashlib.sha256(identity.encode()).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"VaultIdentityFlow(role={self.credential.role!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def mint(self, deadline: Deadline) -> Token:
        role = self.credential.role
        value = self.signer.sign_identity_token(role, deadline)
        mask(value)
        header, payload = self._verified(value, deadline)
        now = time.time()
        exp = payload.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= now:
            raise SourceError(
                f"Vault identity token for role {role} has no future exp claim", reason="vault_identity_token"
            )
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        return Token(
            value=value, issued_at=now, expires_at=float(exp), flow=self.name, claims=claims_summary(payload), kid=kid
        )

    def _verified(self, value: str, deadline: Deadline) -> tuple[dict[str, Any], dict[str, Any]]:
        for refresh in (False, True):
            jwks = self._jwks(deadline, refresh=refresh)
            try:
                return jws.verify(value, jwks, algorithms=ALGORITHMS)
            except jws.JwsError as exc:
                if not refresh and "no key with kid" in str(exc):
                    continue  # a rotated key: fetch the JWKS again, once
                raise SourceError(
                    f"Vault identity token for role {self.credential.role} does not verify against Vault's JWKS: {exc}",
                    reason="vault_identity_token",
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _jwks(self, deadline: Deadline, *, refresh: bool) -> dict[str, Any]:
        if not refresh:
            with _JWKS_LOCK:
                cached = _JWKS.get(self.identity)
            if cached is not None:
                return cached
        jwks = self.signer.identity_jwks(deadline)
        with _JWKS_LOCK:
            _JWKS[self.identity] = jwks
        return jwks


def forget_jwks() -> None:
    with _JWKS_LOCK:
        _JWKS.clear()
