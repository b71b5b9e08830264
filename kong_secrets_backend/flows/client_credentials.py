"""``flow: client_credentials``: an OAuth 2.0 client of the identity provider in front of Kong (RFC 6749 §4.4).

The credential (:class:`ClientCredentials`) says who the client is, how it authenticates and what it asks
for; :func:`parse` builds it from the kong_auth block. :class:`ClientCredentialsFlow` mints, with every
client authentication Kong's IdPs use:

- ``client_secret_basic`` / ``client_secret_post``: authlib prepares the request;
- ``client_secret_jwt`` / ``private_key_jwt`` (RFC 7523): a fresh client assertion per request, signed
  with a key imported once when the secret was read (never re-imported per mint);
- ``issuer`` instead of ``token_url``: the token endpoint comes from OpenID discovery (cached).

The token is minted explicitly on each call (no authlib auto-refresh, which would drop ``resource`` on
refresh), over the bounded transport; the response is parsed as untrusted input. The cache identity is a
digest of everything that changes the token (:meth:`ClientCredentials.cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.errors import KongAuthError, SecretFormatError
from kong_secrets_backend.flows import FlowKind, discovery, jws
from kong_secrets_backend.flows.fields import DEFAULT_HEADER, Fields, scope_value
from kong_secrets_backend.flows.identity import local_token_key
from kong_secrets_backend.flows.keys import SigningKey, hmac_key, pem_mask_values, private_key
from kong_secrets_backend.flows.oauth_response import parse_token_response
from kong_secrets_backend.transport.urls import check_endpoint_url

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

NAME = "client_credentials"
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

    flow = NAME
    header_scheme = "Bearer"

    @property
    def consumer(self) -> str:
        return self.client_id

    def secret_values(self) -> tuple[str, ...]:
        values: tuple[str, ...] = (self.client_secret,) if self.client_secret else ()
        return values + (pem_mask_values(self.private_key) if self.private_key else ())

    def cache_key(self) -> str:
        """The token's identity: who (endpoint, client, auth method, public key), for what (scope, audience,
        resource, parameters), which version of the secret. Never the client secret or anything derived from it:
        it names shared cache entries, which whoever can list the cache sees."""
        material = {
            "flow": self.flow,
            "token_url": self.token_url,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_auth_method": self.client_auth_method,
            # alg and kid; for private_key_jwt the public key's fingerprint (empty for an HMAC secret)
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


def parse(block: Mapping[str, Any], *, settings: Settings, version: str | None) -> ClientCredentials:
    """The credential of a client_credentials block; endpoint URLs pass the settings' endpoint policy."""
    f = Fields(block, allowed=FIELDS, flow=NAME)
    token_url, issuer = f.optional_str("token_url"), f.optional_str("issuer")
    if token_url and issuer:
        raise SecretFormatError("kong_auth has both token_url and issuer; give one of them")
    if not token_url and not issuer:
        raise SecretFormatError("kong_auth.token_url is missing (or give issuer, for OpenID discovery)")
    if token_url:
        token_url = check_endpoint_url(token_url, field_name="token_url", settings=settings)
    if issuer:
        issuer = check_endpoint_url(issuer, field_name="issuer", settings=settings)
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


# --- minting ----------------------------------------------------------------------------------------------------

GRANT_TYPE = "client_credentials"  # RFC 6749 §4.4: the OAuth grant the flow is named after
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds; each assertion is used once (its jti is fresh)


class ClientCredentialsFlow:
    name = NAME
    static = False

    def __init__(self, credential: ClientCredentials, *, http: HttpTransport, settings: Settings) -> None:
        self.credential = credential
        self.http = http
        self.settings = settings  # default_token_ttl, max_token_ttl; the endpoint policy for a discovered endpoint
        self._cache_key = credential.cache_key()
        self._token_key = local_token_key(self._cache_key, self.cache_secret())

    def __repr__(self) -> str:
        cred = self.credential
        where = f"token_url={cred.token_url!r}" if cred.token_url else f"issuer={cred.issuer!r}"
        return f"ClientCredentialsFlow({where}, client_id={cred.client_id!r}, method={cred.client_auth_method!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def token_key(self) -> str:
        return self._token_key

    def cache_secret(self) -> bytes:
        """Sealing material for shared token caches: only a holder of the client secret or key has it."""
        cred = self.credential
        return "\0".join((self._cache_key, cred.client_secret or "", cred.private_key or "")).encode()

    def token_url(self, deadline: Deadline) -> str:
        cred = self.credential
        if cred.token_url:
            return cred.token_url
        assert cred.issuer is not None
        return discovery.token_endpoint(cred.issuer, self.http, deadline, settings=self.settings)

    def request(self, token_url: str, *, now: float | None = None) -> tuple[str, dict[str, str], str]:
        """(url, headers, body) of the token request, client authentication applied."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        cred = self.credential
        params: dict[str, str] = dict(cred.token_params)
        for name in ("scope", "audience", "resource"):
            value = getattr(cred, name)
            if value is not None:
                params[name] = value
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if cred.signing_key is not None:  # client_secret_jwt / private_key_jwt
            params["client_id"] = cred.client_id
            params["client_assertion_type"] = ASSERTION_TYPE
            params["client_assertion"] = self.client_assertion(token_url, now=now)
            return token_url, headers, prepare_token_request(GRANT_TYPE, **params)
        from authlib.oauth2.auth import ClientAuth

        body = prepare_token_request(GRANT_TYPE, **params)
        auth = ClientAuth(cred.client_id, cred.client_secret, cred.client_auth_method)
        url, headers, body = auth.prepare("POST", token_url, headers, body)
        return url, headers, body

    def client_assertion(self, token_url: str, *, now: float | None = None) -> str:
        """RFC 7523 §3: iss = sub = client_id, aud = the token endpoint, a one-time jti, a short exp."""
        cred = self.credential
        assert cred.signing_key is not None
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": cred.client_id,
            "sub": cred.client_id,
            "aud": token_url,
            "jti": secrets.token_urlsafe(18),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jws.encode(claims, cred.signing_key)

    def mint(self, deadline: Deadline) -> Token:
        token_url = self.token_url(deadline)
        url, headers, body = self.request(token_url)
        try:
            resp = self.http.post_form(url, headers=headers, body=body, deadline=deadline)
        except KongAuthError:
            if self.credential.issuer:  # the endpoint may have moved: discover it again next time
                discovery.forget(self.credential.issuer)
            raise
        settings = self.settings
        return parse_token_response(
            resp, flow=self.name, default_ttl=settings.default_token_ttl, max_ttl=settings.max_token_ttl
        )


def build(
    credential: ClientCredentials, *, http: HttpTransport, settings: Settings, source: SecretSource
) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(credential, http=http, settings=settings)


FLOW = FlowKind(
    name=NAME,
    parse=parse,
    build=build,
    static=ClientCredentialsFlow.static,
    secret_fields=("client_secret", "private_key"),
)

__all__ = ["ASSERTION_TYPE", "CLIENT_AUTH_METHODS", "FLOW", "ClientCredentials", "ClientCredentialsFlow", "parse"]
