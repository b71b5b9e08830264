"""``flow: vault_identity``: Vault signs an OIDC token for the backend's own identity (``identity/oidc/token/<role>``).

No client secret exists anywhere: the backend's Vault login is the credential, so the flow needs source
``vault``. The credential (:class:`VaultIdentity`) is the role. :class:`VaultIdentityFlow` checks the token
against Vault's JWKS (cached with a TTL, fetched again once when a key id is unknown, as after a key
rotation) and reads its expiry from its ``exp`` claim. The cache identity is the role and version plus a
digest of the backend settings (who logged in to Vault).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import SecretFormatError, SourceError
from kong_secrets_backend.flows import FlowKind, jws
from kong_secrets_backend.flows.fields import DEFAULT_HEADER, Fields
from kong_secrets_backend.flows.identity import local_token_key
from kong_secrets_backend.state import PROCESS
from kong_secrets_backend.tokens import Token, claims_summary

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

NAME = "vault_identity"
_ROLE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class VaultIdentity:
    role: str  # identity/oidc/token/<role>
    header_name: str = DEFAULT_HEADER
    version: str | None = None

    flow = NAME
    header_scheme = "Bearer"
    consumer = None  # the token's sub: the Vault entity that signed it

    def secret_values(self) -> tuple[str, ...]:
        return ()

    def cache_key(self) -> str:
        # The token also depends on who logged in to Vault: the flow adds the backend settings' fingerprint.
        return "vi:" + hashlib.sha256(f"{self.role}\0{self.version}".encode()).hexdigest()


def parse(block: Mapping[str, Any], *, settings: Settings, version: str | None) -> VaultIdentity:
    """The credential of a vault_identity block: the role (``FLOW.source`` is checked by parse_credential)."""
    f = Fields(block, allowed=frozenset({"role"}), flow=NAME)
    role = f.required_str("role")
    if not _ROLE.fullmatch(role):
        raise SecretFormatError("kong_auth.role must be a Vault identity OIDC role name (letters, digits, _ . -)")
    return VaultIdentity(role=role, header_name=f.header_name(), version=version)


ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


class IdentityTokenSigner(Protocol):
    """What the flow needs from the Vault source."""

    def sign_identity_token(self, role: str, deadline: Deadline) -> str: ...

    def identity_jwks(self, deadline: Deadline) -> dict[str, Any]: ...


class VaultIdentityFlow:
    name = NAME
    static = False

    def __init__(
        self, credential: VaultIdentity, signer: IdentityTokenSigner, *, identity: str, max_ttl: float = 86400.0
    ) -> None:
        """identity: a fingerprint of the backend settings (who logs in to Vault): part of the cache key, as a
        digest under the process's own key (the settings may hold Vault credentials; the tokens of this flow
        never reach a shared cache). max_ttl: the backend's max_token_ttl."""
        self.credential = credential
        self.signer = signer
        self.identity = identity
        self.max_ttl = max_ttl
        self._cache_key = local_token_key(credential.cache_key(), identity)

    def __repr__(self) -> str:
        return f"VaultIdentityFlow(role={self.credential.role!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def cache_secret(self) -> None:
        """No secret to seal a shared cache entry with (Vault signs for the login): tokens stay in the process."""
        return None

    def mint(self, deadline: Deadline) -> Token:
        role = self.credential.role
        value = self.signer.sign_identity_token(role, deadline)
        mask(value)
        header, payload = self._verified(value, deadline)
        now = time.time()
        exp = payload.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp) or exp <= now:
            raise SourceError(
                f"Vault identity token for role {role} has no future exp claim", reason="vault_identity_token"
            )
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        expires_at = min(float(exp), now + self.max_ttl)  # Vault's role TTL, within max_token_ttl
        return Token(
            value=value, issued_at=now, expires_at=expires_at, flow=self.name, claims=claims_summary(payload), kid=kid
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
        cached = None if refresh else PROCESS.jwks.get(self.identity)
        if cached is not None:
            return cached
        jwks = self.signer.identity_jwks(deadline)
        PROCESS.jwks[self.identity] = jwks
        return jwks


def forget_jwks() -> None:
    PROCESS.jwks.clear()


def build(
    credential: VaultIdentity, *, http: HttpTransport, settings: Settings, source: SecretSource
) -> VaultIdentityFlow:
    """Vault signs for the identity the backend logged in with: the settings' fingerprint names it."""
    if not callable(getattr(source, "sign_identity_token", None)):
        raise SecretFormatError(f"kong_auth.flow {NAME!r} needs source {FLOW.source!r}")
    signer = cast("IdentityTokenSigner", source)
    return VaultIdentityFlow(credential, signer, identity=settings.fingerprint, max_ttl=settings.max_token_ttl)


FLOW = FlowKind(name=NAME, parse=parse, build=build, static=VaultIdentityFlow.static, source="vault")
