"""Token flows: a credential becomes a token.

Each flow turns one kind of credential into a :class:`~kong_secrets_backend.tokens.Token`; it does no
caching (that is :mod:`kong_secrets_backend.tokens.broker`'s job) and nothing but the one mint. A ``static``
flow (key_auth) has nothing to mint: the resolver takes its value directly, bypassing the token cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import Credential
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport


class TokenFlow(Protocol):
    name: str
    static: bool

    def cache_key(self) -> str:
        """Digest of everything that changes the token (never the secret itself)."""

    def cache_secret(self) -> bytes | None:
        """Secret material (the cache key plus the credential's secret or private key) from which
        cache/sealing.py derives the key sealing this flow's tokens in a shared token cache (file, redis).
        None, or no such method, keeps the flow's tokens in the process (the broker checks with getattr)."""

    def mint(self, deadline: Deadline) -> Token:
        """Obtain a new token, or raise a KongAuthError naming why not."""


def parse_credential(block: Any, *, settings: Settings, version: str | None) -> Credential:
    from kong_secrets_backend.credentials import parse_credential as parse

    return parse(block, allow_insecure_http=settings.allow_insecure_http, version=version, source=settings.source)


def build_flow(credential: Credential, *, http: HttpTransport, settings: Settings, source: Any) -> TokenFlow:
    return _build_flow(
        credential,
        http,
        default_ttl=settings.default_token_ttl,
        source=source,
        identity=settings.fingerprint,
        allow_insecure_http=settings.allow_insecure_http,
    )


def _build_flow(
    credential: Credential,
    http: HttpTransport,
    *,
    default_ttl: float,
    source: Any = None,
    identity: str = "",
    allow_insecure_http: bool = False,
) -> TokenFlow:
    """The flow for a credential. ``source`` and ``identity`` (the backend settings' fingerprint) serve
    vault_identity, which has Vault sign for the identity the backend logged in with."""
    from kong_secrets_backend.errors import SecretFormatError

    if credential.flow == "client_credentials":
        from kong_secrets_backend.flows.client_credentials import ClientCredentialsFlow

        return ClientCredentialsFlow(
            credential,  # type: ignore[arg-type]
            http,
            default_ttl=default_ttl,
            allow_insecure_http=allow_insecure_http,
        )
    if credential.flow == "kong_jwt":
        from kong_secrets_backend.flows.kong_jwt import KongJwtFlow

        return KongJwtFlow(credential)  # type: ignore[arg-type]
    if credential.flow == "key_auth":
        from kong_secrets_backend.flows.key_auth import KeyAuthFlow

        return KeyAuthFlow(credential)  # type: ignore[arg-type]
    if credential.flow == "vault_identity":
        from kong_secrets_backend.flows.vault_identity import VaultIdentityFlow

        if not callable(getattr(source, "sign_identity_token", None)):
            raise SecretFormatError("kong_auth.flow 'vault_identity' needs source 'vault'")
        return VaultIdentityFlow(credential, source, identity=identity)  # type: ignore[arg-type]
    raise SecretFormatError(f"kong_auth.flow {credential.flow!r} is unknown")
