"""Token flows: a credential becomes a token.

Each flow turns one kind of credential into a :class:`~kong_secrets_backend.tokens.Token`; it does no
caching (that is :mod:`kong_secrets_backend.broker`'s job) and nothing but the one mint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import Credential
    from kong_secrets_backend.deadline import Deadline
    from kong_secrets_backend.http import HttpTransport
    from kong_secrets_backend.tokens import Token


class TokenFlow(Protocol):
    name: str

    def cache_key(self) -> str:
        """Digest of everything that changes the token (never the secret itself)."""

    def mint(self, deadline: Deadline) -> Token:
        """Obtain a new token, or raise a KongAuthError naming why not."""


def build_flow(credential: Credential, http: HttpTransport, *, default_ttl: float) -> TokenFlow:
    from kong_secrets_backend.flows.client_credentials import ClientCredentialsFlow

    return ClientCredentialsFlow(credential, http, default_ttl=default_ttl)
