"""The ``kong_auth`` block of a connection secret, parsed into a typed credential.

A credential is everything needed to obtain a token for one Kong consumer. Each flow has its own
dataclass; unknown and missing fields are reported by name. Secret values are kept out of ``repr``
and registered with the secrets masker as soon as they are parsed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.masking import mask
from kong_secrets_backend.urls import check_endpoint_url

DEFAULT_HEADER = "Authorization"
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
FLOWS = ("client_credentials",)

_COMMON_FIELDS = {"flow", "header_name", "credentials_path"}
_HEADER_NAME_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth 2.0 client_credentials grant (RFC 6749 §4.4) against an identity provider's token endpoint."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    client_auth_method: str = "client_secret_basic"
    scope: str | None = None
    audience: str | None = None
    resource: str | None = None
    token_params: Mapping[str, str] = field(default_factory=dict)
    header_name: str = DEFAULT_HEADER
    version: str | None = None  # the source's version of the secret it came from

    flow = "client_credentials"

    def secret_values(self) -> tuple[str, ...]:
        return (self.client_secret,)

    def cache_key(self) -> str:
        """A digest of everything that changes the token: who, which secret (and version), for what."""
        material = {
            "flow": self.flow,
            "token_url": self.token_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_auth_method": self.client_auth_method,
            "scope": self.scope,
            "audience": self.audience,
            "resource": self.resource,
            "token_params": dict(sorted(self.token_params.items())),
            "version": self.version,
        }
        return "cc:" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


Credential = ClientCredentials


def load_kong_auth(raw: Any) -> dict[str, Any]:
    """The kong_auth value as a dict: a JSON object, or a string holding one (``vault kv put k kong_auth=@f``)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise SecretFormatError(
                f"kong_auth is a string but not valid JSON (line {exc.lineno if hasattr(exc, 'lineno') else '?'})"
            ) from None
    if not isinstance(raw, dict):
        raise SecretFormatError(f"kong_auth must be a JSON object, not {type(raw).__name__}")
    return raw


def parse_credential(block: Mapping[str, Any], *, allow_insecure_http: bool, version: str | None = None) -> Credential:
    """Build the credential for a kong_auth block (already merged with credentials_path, if any)."""
    flow = block.get("flow", "client_credentials")
    if flow not in FLOWS:
        raise SecretFormatError(f"kong_auth.flow {flow!r} is unknown (supported: {', '.join(FLOWS)})")
    fields_ = _Fields(
        block,
        allowed={
            "token_url",
            "client_id",
            "client_secret",
            "client_auth_method",
            "scope",
            "audience",
            "resource",
            "token_params",
        },
    )
    secret = fields_.required_str("client_secret")
    mask(secret)
    method = fields_.optional_str("client_auth_method") or "client_secret_basic"
    if method not in CLIENT_AUTH_METHODS:
        raise SecretFormatError(
            f"kong_auth.client_auth_method {method!r} is not supported (supported: {', '.join(CLIENT_AUTH_METHODS)})"
        )
    return ClientCredentials(
        token_url=check_endpoint_url(
            fields_.required_str("token_url"), field_name="token_url", allow_insecure_http=allow_insecure_http
        ),
        client_id=fields_.required_str("client_id"),
        client_secret=secret,
        client_auth_method=method,
        scope=_scope(fields_.optional("scope")),
        audience=fields_.optional_str("audience"),
        resource=fields_.optional_str("resource"),
        token_params=fields_.str_map("token_params"),
        header_name=fields_.header_name(),
        version=version,
    )


def _scope(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return " ".join(value) or None
    if isinstance(value, str):
        return " ".join(value.split()) or None
    raise SecretFormatError("kong_auth.scope must be a string or a list of strings")


class _Fields:
    """Typed access to a kong_auth block; unknown fields are refused up front, by name."""

    def __init__(self, block: Mapping[str, Any], *, allowed: set[str]) -> None:
        unknown = sorted(set(block) - allowed - _COMMON_FIELDS)
        if unknown:
            raise SecretFormatError(f"kong_auth has unknown fields: {', '.join(unknown)}")
        self.block = block

    def optional(self, name: str) -> Any:
        return self.block.get(name)

    def optional_str(self, name: str) -> str | None:
        value = self.block.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SecretFormatError(f"kong_auth.{name} must be a string, not {type(value).__name__}")
        return value or None

    def required_str(self, name: str) -> str:
        value = self.optional_str(name)
        if value is None:
            raise SecretFormatError(f"kong_auth.{name} is missing")
        return value

    def str_map(self, name: str) -> dict[str, str]:
        value = self.block.get(name) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SecretFormatError(f"kong_auth.{name} must be an object of string values")
        reserved = sorted(set(value) & {"grant_type", "client_id", "client_secret", "client_assertion"})
        if reserved:
            raise SecretFormatError(f"kong_auth.{name} must not set {', '.join(reserved)}")
        return value

    def header_name(self) -> str:
        name = self.optional_str("header_name") or DEFAULT_HEADER
        if not set(name) <= _HEADER_NAME_CHARS:
            raise SecretFormatError("kong_auth.header_name is not a valid HTTP header name")
        return name
