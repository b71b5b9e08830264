"""OAuth 2.0 client_credentials (RFC 6749 §4.4) with every client authentication Kong's IdPs use.

- ``client_secret_basic`` / ``client_secret_post``: authlib prepares the request;
- ``client_secret_jwt`` / ``private_key_jwt`` (RFC 7523): a fresh client assertion per request, signed
  with a key imported once when the secret was read (never re-imported per mint);
- ``issuer`` instead of ``token_url``: the token endpoint comes from OpenID discovery (cached).

The token is minted explicitly on each call (no authlib auto-refresh, which would drop ``resource`` on
refresh), over the bounded transport; the response is parsed as untrusted input.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from kong_secrets_backend.errors import KongAuthError
from kong_secrets_backend.flows import discovery, jws
from kong_secrets_backend.flows.oauth_response import parse_token_response

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import ClientCredentials
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds; each assertion is used once (its jti is fresh)


class ClientCredentialsFlow:
    name = "client_credentials"
    static = False

    def __init__(
        self,
        credential: ClientCredentials,
        http: HttpTransport,
        *,
        default_ttl: float,
        allow_insecure_http: bool = False,
    ) -> None:
        self.credential = credential
        self.http = http
        self.default_ttl = default_ttl
        self.allow_insecure_http = allow_insecure_http
        self._cache_key = credential.cache_key()

    def __repr__(self) -> str:
        cred = self.credential
        where = f"token_url={cred.token_url!r}" if cred.token_url else f"issuer={cred.issuer!r}"
        return f"ClientCredentialsFlow({where}, client_id={cred.client_id!r}, method={cred.client_auth_method!r})"

    def cache_key(self) -> str:
        return self._cache_key

    def cache_secret(self) -> bytes:
        """Sealing material for shared token caches: only a holder of the client secret or key has it."""
        cred = self.credential
        return "\0".join((self._cache_key, cred.client_secret or "", cred.private_key or "")).encode()

    def token_url(self, deadline: Deadline) -> str:
        cred = self.credential
        if cred.token_url:
            return cred.token_url
        assert cred.issuer is not None
        return discovery.token_endpoint(cred.issuer, self.http, deadline, allow_insecure_http=self.allow_insecure_http)

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
            return token_url, headers, prepare_token_request("client_credentials", **params)
        from authlib.oauth2.auth import ClientAuth

        body = prepare_token_request("client_credentials", **params)
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
        return parse_token_response(resp, flow=self.name, default_ttl=self.default_ttl)


__all__ = ["ASSERTION_TYPE", "ClientCredentialsFlow"]
