"""The endpoint policy: which URLs a credential may be sent to (https; http only on loopback, or when the
backend setting ``allow_insecure_http`` says so)."""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

from kong_secrets_backend.errors import SecretFormatError


class EndpointPolicy(Protocol):
    """What the endpoint policy reads of the backend settings (``settings.Settings`` has it)."""

    @property
    def allow_insecure_http(self) -> bool: ...


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: object, *, field_name: str, settings: EndpointPolicy) -> str:
    """Return url if a credential may be posted to it: https (http only on loopback or when allowed), no userinfo."""
    if not isinstance(url, str) or not url:
        raise SecretFormatError(f"kong_auth.{field_name} must be a non-empty URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SecretFormatError(f"kong_auth.{field_name} must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise SecretFormatError(
            f"kong_auth.{field_name} must not carry user:password@ (put credentials in their fields)"
        )
    if parts.scheme == "http" and not settings.allow_insecure_http and not is_loopback(parts.hostname):
        raise SecretFormatError(
            f"kong_auth.{field_name} uses http:// on a non-loopback host; use https, or set the backend "
            "kwarg allow_insecure_http to true"
        )
    return url
