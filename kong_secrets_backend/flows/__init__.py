"""Kong auth flows: the ``kong_auth`` block of a connection secret becomes a credential, and a credential a token.

Each flow is one module, ``flows/<name>.py``, holding its frozen credential dataclass, the pure parsing of
its ``kong_auth`` block, its minting (a :class:`TokenFlow`) and its cache identity; the module ends with a
:class:`FlowKind`, ``FLOW``, which carries the flow's facts (static or not, which fields are secret, which
source it needs). :data:`REGISTRY` below names every flow's module: adding a flow is one new module and one
line there. Modules are imported on first use.

A flow does no caching (that is :mod:`kong_secrets_backend.tokens.broker`'s job) and nothing but the one
mint. A ``static`` flow has nothing to mint: the resolver takes its value directly, bypassing the token cache.
Shared helpers: :mod:`.fields` (typed block access), :mod:`.keys` (signing keys), :mod:`.jws`,
:mod:`.discovery` (OpenID discovery) and :mod:`.oauth_response` (token endpoint answers).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows.fields import SECRET_FIELDS

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

# Every flow, by the name a kong_auth block gives in "flow", and the module that holds it (imported on first use).
REGISTRY: Mapping[str, str] = MappingProxyType(
    {
        "client_credentials": "kong_secrets_backend.flows.client_credentials",
        "kong_jwt": "kong_secrets_backend.flows.kong_jwt",
        "key_auth": "kong_secrets_backend.flows.key_auth",
        "vault_identity": "kong_secrets_backend.flows.vault_identity",
    }
)
DEFAULT_FLOW = "client_credentials"  # a kong_auth block without "flow"


class Credential(Protocol):
    """A parsed kong_auth block: everything needed to obtain a token for one Kong consumer (frozen, no I/O)."""

    @property
    def flow(self) -> str: ...

    @property
    def header_name(self) -> str: ...

    @property
    def header_scheme(self) -> str:
        """The auth header's scheme ("Bearer"), or "" when the header's value is the token itself."""

    @property
    def version(self) -> str | None:
        """The source's version of the secret the credential came from (part of the cache identity)."""

    @property
    def consumer(self) -> str | None:
        """Who Kong sees, for the audit trail (a client_id, a jwt credential's key; never a secret), or None
        when only the token says (its ``sub``)."""

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string the credential holds, for the secrets masker."""

    def cache_key(self) -> str:
        """Digest of the token's non-secret identity (flow, endpoint, client, scope, audience, version...): it names
        shared cache entries, so never a secret or a hash of one (see :mod:`.identity`)."""


class TokenFlow(Protocol):
    """A credential's minting: one kind of credential becomes a :class:`~kong_secrets_backend.tokens.Token`."""

    name: str
    static: bool

    def cache_key(self) -> str:
        """The credential's cache_key: the name of the flow's tokens in shared caches (non-secret identity only).
        A flow may also have ``token_key()``, the in-process key that tells secrets apart (:mod:`.identity`);
        without one the broker and the keeper use cache_key."""

    def cache_secret(self) -> bytes | None:
        """Secret material (the cache key plus the credential's secret or private key) from which
        cache/sealing.py derives the key sealing this flow's tokens in a shared token cache (file, redis).
        None, or no such method, keeps the flow's tokens in the process (the broker checks with getattr)."""

    def mint(self, deadline: Deadline) -> Token:
        """Obtain a new token, or raise a KongAuthError naming why not."""


class CredentialParser(Protocol):
    def __call__(self, block: Mapping[str, Any], *, settings: Settings, version: str | None) -> Credential: ...


class FlowBuilder(Protocol):
    def __call__(
        self, credential: Any, *, http: HttpTransport, settings: Settings, source: SecretSource
    ) -> TokenFlow: ...


@dataclass(frozen=True)
class FlowKind:
    """One flow as the rest of the package sees it: its name, its facts, how to parse and how to build it."""

    name: str
    parse: CredentialParser  # pure: a kong_auth block (merged with credentials_path) -> the flow's credential
    build: FlowBuilder  # the credential's TokenFlow
    static: bool = False  # the token is the credential itself: nothing is minted or cached
    secret_fields: tuple[str, ...] = ()  # kong_auth fields holding secrets: masked before the block is parsed
    source: str | None = None  # the only secret source the flow works with, if it needs one


def flow_kind(name: object) -> FlowKind | None:
    """The registered flow of that name, or None."""
    module = REGISTRY.get(name) if isinstance(name, str) else None
    if module is None:
        return None
    kind: FlowKind = importlib.import_module(module).FLOW
    return kind


def is_static(name: object) -> bool:
    """Whether tokens of the named flow are the credential itself (not minted, not cached)."""
    kind = flow_kind(name)
    return kind is not None and kind.static


def parse_credential(block: Mapping[str, Any], *, settings: Settings, version: str | None) -> Credential:
    """Build the credential for a kong_auth block (already merged with credentials_path, if any).

    Every secret value is registered with the secrets masker before anything else can fail.
    """
    name = block.get("flow", DEFAULT_FLOW)
    kind = flow_kind(name)
    mask(*_secret_strings(block, kind))
    if kind is None:
        shown = name if isinstance(name, str) and len(name) <= 40 else type(name).__name__
        raise SecretFormatError(f"kong_auth.flow {shown!r} is unknown (supported: {', '.join(REGISTRY)})")
    if kind.source is not None and settings.source != kind.source:
        raise SecretFormatError(
            f"kong_auth.flow {kind.name!r} needs source {kind.source!r} (this backend reads from {settings.source!r})"
        )
    return kind.parse(block, settings=settings, version=version)


def build_flow(credential: Credential, *, http: HttpTransport, settings: Settings, source: SecretSource) -> TokenFlow:
    """The flow minting tokens for a credential, over ``http`` or, for a flow that needs it, ``source``."""
    kind = flow_kind(credential.flow)
    if kind is None:
        raise SecretFormatError(f"kong_auth.flow {credential.flow!r} is unknown")
    return kind.build(credential, http=http, settings=settings, source=source)


def _secret_strings(block: Mapping[str, Any], kind: FlowKind | None) -> list[str]:
    from kong_secrets_backend.flows.keys import pem_mask_values

    out: list[str] = []
    names = dict.fromkeys((*SECRET_FIELDS, *(kind.secret_fields if kind else ())))
    for name in names:
        value = block.get(name)
        if isinstance(value, str) and value:
            out.extend(pem_mask_values(value) if "PRIVATE KEY" in value else (value,))
    return out


__all__ = [
    "DEFAULT_FLOW",
    "REGISTRY",
    "Credential",
    "FlowKind",
    "TokenFlow",
    "build_flow",
    "flow_kind",
    "is_static",
    "parse_credential",
]
