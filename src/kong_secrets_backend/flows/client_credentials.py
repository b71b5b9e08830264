"""OAuth 2.0 client_credentials: client authentication and the request body are authlib's; the HTTP is ours.

The token is minted explicitly on each call (no authlib auto-refresh), over the bounded transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kong_secrets_backend.flows.oauth_response import parse_token_response

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import ClientCredentials
    from kong_secrets_backend.deadline import Deadline
    from kong_secrets_backend.http import HttpTransport
    from kong_secrets_backend.tokens import Token


class ClientCredentialsFlow:
    name = "client_credentials"

    def __init__(self, credential: ClientCredentials, http: HttpTransport, *, default_ttl: float) -> None:
        self.credential = credential
        self.http = http
        self.default_ttl = default_ttl
        self._cache_key = credential.cache_key()

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsFlow(token_url={self.credential.token_url!r}, client_id={self.credential.client_id!r})"
        )

    def cache_key(self) -> str:
        return self._cache_key

    def request(self) -> tuple[str, dict[str, str], str]:
        """(url, headers, body) of the token request, client authentication applied."""
        from authlib.oauth2.auth import ClientAuth
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        cred = self.credential
        params: dict[str, str] = dict(cred.token_params)
        for name in ("scope", "audience", "resource"):
            value = getattr(cred, name)
            if value is not None:
                params[name] = value
        body = prepare_token_request("client_credentials", **params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        auth = ClientAuth(cred.client_id, cred.client_secret, cred.client_auth_method)
        url, headers, body = auth.prepare("POST", cred.token_url, headers, body)
        return url, headers, body

    def mint(self, deadline: Deadline) -> Token:
        url, headers, body = self.request()
        resp = self.http.post_form(url, headers=headers, body=body, deadline=deadline)
        return parse_token_response(resp, flow=self.name, default_ttl=self.default_ttl)
