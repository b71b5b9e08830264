"""OpenID Connect discovery (``{issuer}/.well-known/openid-configuration``), cached per issuer with a TTL.

The document is untrusted input like any IdP response: fetched over the bounded transport (no redirects,
size cap, deadline), its ``issuer`` must be the configured one (OpenID Connect Discovery §4.3), and the
token endpoint it names must pass the same https rule as a configured ``token_url``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.errors import TokenEndpointError
from kong_secrets_backend.state import PROCESS
from kong_secrets_backend.transport.urls import check_endpoint_url

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

WELL_KNOWN = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + WELL_KNOWN


def token_endpoint(issuer: str, http: HttpTransport, deadline: Deadline, *, settings: Settings) -> str:
    """The issuer's token endpoint, from its (cached) discovery document."""
    meta = document(issuer, http, deadline, settings=settings)
    return str(meta["token_endpoint"])


def document(issuer: str, http: HttpTransport, deadline: Deadline, *, settings: Settings) -> dict[str, Any]:
    """The issuer's discovery document, cached per issuer and endpoint policy (``settings.allow_insecure_http``,
    and the CA bundle that verified it: a document fetched under one trust policy is not reused under another)."""
    key = (issuer, settings.allow_insecure_http, settings.ca_bundle)
    cached = PROCESS.discovery.get(key)
    if cached is not None:
        return cached
    meta = _fetch(issuer, http, deadline, settings=settings)
    PROCESS.discovery[key] = meta
    return meta


def forget(issuer: str | None = None) -> None:
    """Drop cached documents (one issuer's, or all): tests, and a token endpoint that stopped answering."""
    for key in PROCESS.discovery:
        if issuer is None or key[0] == issuer:
            PROCESS.discovery.pop(key)


def _fetch(issuer: str, http: HttpTransport, deadline: Deadline, *, settings: Settings) -> dict[str, Any]:
    url = discovery_url(issuer)
    what = "OpenID discovery endpoint"
    resp = http.get(url, deadline=deadline, what=what)
    if 300 <= resp.status < 400:
        raise TokenEndpointError(
            f"{what} {url} answered a {resp.status} redirect; redirects are not followed",
            reason="idp_discovery",
            status=resp.status,
        )
    if resp.status != 200:
        raise TokenEndpointError(
            f"{what} {url} answered HTTP {resp.status}", reason="idp_discovery", status=resp.status
        )
    try:
        meta = json.loads(resp.body)
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict):
        raise TokenEndpointError(f"{what} {url} did not answer a JSON object", reason="idp_discovery", status=200)
    if not isinstance(meta.get("issuer"), str) or meta["issuer"].rstrip("/") != issuer.rstrip("/"):
        raise TokenEndpointError(
            f"discovery document at {url} is for another issuer; kong_auth.issuer must be exactly the IdP's issuer",
            reason="idp_discovery",
            status=200,
        )
    endpoint = meta.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise TokenEndpointError(f"discovery document at {url} has no token_endpoint", reason="idp_discovery")
    check_endpoint_url(endpoint, field_name="issuer's token_endpoint", settings=settings)
    return meta
