"""``flow: client_credentials``: an OAuth 2.0 client of the identity provider in front of Kong (RFC 6749 §4.4)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.credentials.fields import DEFAULT_HEADER, Fields, scope_value
from kong_secrets_backend.credentials.keys import SigningKey, hmac_key, pem_mask_values, private_key
from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.transport.urls import check_endpoint_url

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")
JWT_AUTH_METHODS = ("client_secret_jwt", "private_key_jwt")

FIELDS = frozenset(
    {
        "token_url",
        "issuer",
        "client_id",
        "client_secret",
        "client_auth_method",
        "private_key",
        "kid",
        "alg",
        "scope",
        "audience",
        "resource",
        "token_params",
    }
)


@dataclass(frozen=True)
class ClientCredentials:
    """Who the client is, how it authenticates, what it asks for. Exactly one of token_url / issuer is set."""

    client_id: str
    token_url: str | None = None
    issuer: str | None = None  # OpenID discovery finds the token endpoint
    client_secret: str | None = field(default=None, repr=False)
    client_auth_method: str = "client_secret_basic"
    private_key: str | None = field(default=None, repr=False)
    signing_key: SigningKey | None = field(default=None, repr=False, compare=False)  # *_jwt methods only
    scope: str | None = None
    audience: str | None = None
    resource: str | None = None
    token_params: Mapping[str, str] = field(default_factory=dict)
    header_name: str = DEFAULT_HEADER
    version: str | None = None  # the source's version of the secret it came from

    flow = "client_credentials"
    header_scheme = "Bearer"

    def secret_values(self) -> tuple[str, ...]:
        values: tuple[str, ...] = (self.client_secret,) if self.client_secret else ()
        return values + (pem_mask_values(self.private_key) if self.private_key else ())

    def cache_key(self) -> str:
        """A digest of everything that changes the token: who, which secret (and version), for what."""
        material = {
            "flow": self.flow,
            "token_url": self.token_url,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_auth_method": self.client_auth_method,
            "signing_key": [self.signing_key.alg, self.signing_key.kid, self.signing_key.fingerprint]
            if self.signing_key
            else None,
            "scope": self.scope,
            "audience": self.audience,
            "resource": self.resource,
            "token_params": dict(sorted(self.token_params.items())),
            "version": self.version,
        }
        return "cc:" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def parse_client_credentials(
    block: Mapping[str, Any], *, allow_insecure_http: bool, version: str | None
) -> ClientCredentials:
    f = Fields(block, allowed=FIELDS, flow="client_credentials")
    token_url, issuer = f.optional_str("token_url"), f.optional_str("issuer")
    if token_url and issuer:
        raise SecretFormatError("kong_auth has both token_url and issuer; give one of them")
    if not token_url and not issuer:
        raise SecretFormatError("kong_auth.token_url is missing (or give issuer, for OpenID discovery)")
    if token_url:
        token_url = check_endpoint_url(token_url, field_name="token_url", allow_insecure_http=allow_insecure_http)
    if issuer:
        issuer = check_endpoint_url(issuer, field_name="issuer", allow_insecure_http=allow_insecure_http)
        if "?" in issuer or "#" in issuer:
            raise SecretFormatError("kong_auth.issuer must not have a query or fragment")

    secret, pem = f.optional_str("client_secret"), f.optional_str("private_key")
    inferred = "private_key_jwt" if pem and not secret else "client_secret_basic"
    method = f.optional_str("client_auth_method") or inferred
    if method not in CLIENT_AUTH_METHODS:
        raise SecretFormatError(
            f"kong_auth.client_auth_method {method!r} is not supported (supported: {', '.join(CLIENT_AUTH_METHODS)})"
        )
    kid, alg = f.optional_str("kid"), f.optional_str("alg")
    signing_key: SigningKey | None = None
    if method == "private_key_jwt":
        if pem is None:
            raise SecretFormatError("kong_auth.private_key is missing (required by client_auth_method private_key_jwt)")
        if secret is not None:
            raise SecretFormatError("kong_auth.client_secret is not used with private_key_jwt; remove it")
        signing_key = private_key(pem, alg=alg, kid=kid, field_name="private_key", alg_field="alg")
    else:
        if secret is None:
            raise SecretFormatError(f"kong_auth.client_secret is missing (required by client_auth_method {method})")
        if pem is not None:
            raise SecretFormatError(f"kong_auth.private_key is only used with private_key_jwt, not {method}")
        if method == "client_secret_jwt":
            signing_key = hmac_key(secret, alg=alg, field_name="client_secret", alg_field="alg")
            if kid:
                signing_key = SigningKey(signing_key.alg, signing_key.key, kid, signing_key.fingerprint)
        elif alg or kid:
            raise SecretFormatError(f"kong_auth.alg and kong_auth.kid are only used with *_jwt methods, not {method}")

    return ClientCredentials(
        client_id=f.required_str("client_id"),
        token_url=token_url,
        issuer=issuer.rstrip("/") if issuer else None,
        client_secret=secret,
        client_auth_method=method,
        private_key=pem,
        signing_key=signing_key,
        scope=scope_value(f.optional("scope")),
        audience=f.optional_str("audience"),
        resource=f.optional_str("resource"),
        token_params=f.str_map("token_params"),
        header_name=f.header_name(),
        version=version,
    )
