"""The ``kong_auth`` block of a connection secret, parsed into a typed credential.

A credential is everything needed to obtain a token for one Kong consumer. Each flow has its own
dataclass and module; the field access they share is in :mod:`.fields`. Unknown and missing fields
are reported by name. Secret values are kept out of ``repr``; private keys are imported once here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from kong_secrets_backend.credentials.client_credentials import (
    CLIENT_AUTH_METHODS,
    ClientCredentials,
    parse_client_credentials,
)
from kong_secrets_backend.credentials.fields import DEFAULT_HEADER
from kong_secrets_backend.credentials.key_auth import KeyAuth, parse_key_auth
from kong_secrets_backend.credentials.kong_jwt import KongJwt, parse_kong_jwt
from kong_secrets_backend.credentials.vault_identity import VaultIdentity, parse_vault_identity
from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.masking import mask

FLOWS = ("client_credentials", "kong_jwt", "key_auth", "vault_identity")

Credential: TypeAlias = ClientCredentials | KongJwt | KeyAuth | VaultIdentity


def load_kong_auth(raw: Any) -> dict[str, Any]:
    """The kong_auth value as a dict: a JSON object, or a string holding one (``vault kv put k kong_auth=@f``)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise SecretFormatError(
                f"kong_auth is a string but not valid JSON (line {getattr(exc, 'lineno', '?')})"
            ) from None
    if not isinstance(raw, dict):
        raise SecretFormatError(f"kong_auth must be a JSON object, not {type(raw).__name__}")
    return raw


def parse_credential(
    block: Mapping[str, Any], *, allow_insecure_http: bool, version: str | None = None, source: str = "vault"
) -> Credential:
    """Build the credential for a kong_auth block (already merged with credentials_path, if any).

    Every secret value is registered with the secrets masker before anything else can fail.
    """
    mask(*_secret_strings(block))
    flow = block.get("flow", "client_credentials")
    if flow == "client_credentials":
        return parse_client_credentials(block, allow_insecure_http=allow_insecure_http, version=version)
    if flow == "kong_jwt":
        return parse_kong_jwt(block, version=version)
    if flow == "key_auth":
        return parse_key_auth(block, version=version)
    if flow == "vault_identity":
        return parse_vault_identity(block, version=version, source=source)
    shown = flow if isinstance(flow, str) and len(flow) <= 40 else type(flow).__name__
    raise SecretFormatError(f"kong_auth.flow {shown!r} is unknown (supported: {', '.join(FLOWS)})")


_SECRET_FIELDS = ("client_secret", "secret", "private_key")


def _secret_strings(block: Mapping[str, Any]) -> list[str]:
    from kong_secrets_backend.credentials.keys import pem_mask_values

    out: list[str] = []
    # A key_auth key is a secret; a kong_jwt key is the credential's public identifier (it is in the token).
    names = (*_SECRET_FIELDS, "key") if block.get("flow") == "key_auth" else _SECRET_FIELDS
    for name in names:
        value = block.get(name)
        if isinstance(value, str) and value:
            out.extend(pem_mask_values(value) if "PRIVATE KEY" in value else (value,))
    return out


__all__ = [
    "CLIENT_AUTH_METHODS",
    "DEFAULT_HEADER",
    "FLOWS",
    "ClientCredentials",
    "Credential",
    "KeyAuth",
    "KongJwt",
    "VaultIdentity",
    "load_kong_auth",
    "parse_credential",
]
