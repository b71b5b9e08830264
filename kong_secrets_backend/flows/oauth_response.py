"""Parse an OAuth 2.0 token endpoint response (RFC 6749 §5.1/§5.2) as untrusted input."""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import TokenEndpointError
from kong_secrets_backend.tokens import Token, claims_summary, jwt_parts
from kong_secrets_backend.transport.http import HttpResponse

_MAX_DESCRIPTION = 300
DEFAULT_MAX_TTL = 86400.0  # the max_token_ttl setting's default


def parse_token_response(
    resp: HttpResponse, *, flow: str, default_ttl: float, max_ttl: float = DEFAULT_MAX_TTL
) -> Token:
    """A Token from a 200 JSON response, else TokenEndpointError carrying the IdP's error code and description.

    The token's lifetime is ``expires_in`` (a finite positive number, or a string of one), else the JWT's
    ``exp``, else ``default_ttl``; in every case at most ``max_ttl`` seconds (the backend's ``max_token_ttl``).
    """
    if 300 <= resp.status < 400:
        raise TokenEndpointError(
            f"token endpoint answered a {resp.status} redirect; redirects are not followed with credentials",
            reason="idp_redirect",
            status=resp.status,
        )
    body = _json_object(resp)
    if resp.status != 200:
        error = _printable(body.get("error")) if body else None
        description = _printable(body.get("error_description")) if body else None
        detail = f": {error}" + (f" ({description})" if description else "") if error else ""
        raise TokenEndpointError(
            f"token endpoint refused the request with HTTP {resp.status}{detail}",
            reason=f"idp_{error}" if error else "idp_http_error",
            status=resp.status,
            oauth_error=error,
            oauth_error_description=description,
        )
    if body is None:
        raise TokenEndpointError(
            f"token endpoint answered 200 with a non-JSON body ({_content_type(resp)})",
            reason="idp_garbage",
            status=200,
        )
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise TokenEndpointError(
            "token endpoint answered 200 without an access_token", reason="idp_garbage", status=200
        )
    mask(access_token)
    mask(body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None)
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenEndpointError(
            f"token endpoint issued token_type {_printable(token_type)!r}; only Bearer tokens are supported",
            reason="idp_token_type",
            status=200,
        )
    now = time.time()
    parts = jwt_parts(access_token)
    header, payload = parts if parts else ({}, {})
    expires_at = min(_expires_at(body.get("expires_in"), payload, now, default_ttl), now + max_ttl)
    claims = claims_summary(payload)
    if "scope" not in claims and isinstance(body.get("scope"), str):
        claims["scope"] = body["scope"]
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    return Token(value=access_token, issued_at=now, expires_at=expires_at, flow=flow, claims=claims, kid=kid)


def _expires_at(expires_in: Any, payload: dict[str, Any], now: float, default_ttl: float) -> float:
    if expires_in is not None:
        return now + _lifetime(expires_in)
    exp = payload.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool) and math.isfinite(exp):
        if exp <= now:
            raise TokenEndpointError("token endpoint issued an already expired token", reason="idp_garbage", status=200)
        return float(exp)
    return now + default_ttl


def _lifetime(expires_in: Any) -> float:
    """``expires_in`` as a finite positive number of seconds: a JSON number, or a string holding one.

    JSON allows ``1e309`` (infinity to a parser), Python's parser also ``NaN`` and ``Infinity``: none is a lifetime.
    """
    value: float | None = None
    if isinstance(expires_in, str):
        with contextlib.suppress(ValueError):
            value = float(expires_in.strip())
    elif isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        try:
            value = float(expires_in)
        except OverflowError:  # an integer with hundreds of digits
            value = math.inf
    if value is None:
        raise TokenEndpointError("token endpoint sent a non-numeric expires_in", reason="idp_garbage", status=200)
    if not math.isfinite(value):
        raise TokenEndpointError(
            "token endpoint sent an expires_in that is not a finite number", reason="idp_garbage", status=200
        )
    if value <= 0:
        shown = int(value) if value.is_integer() else value
        raise TokenEndpointError(
            f"token endpoint issued a token with expires_in={shown}", reason="idp_garbage", status=200
        )
    return value


def _json_object(resp: HttpResponse) -> dict[str, Any] | None:
    try:
        body = json.loads(resp.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _content_type(resp: HttpResponse) -> str:
    return _printable(resp.headers.get("Content-Type") or resp.headers.get("content-type") or "no content type")


def _printable(value: Any) -> str:
    """An IdP-supplied string, made safe for one log line."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text[:_MAX_DESCRIPTION]
