"""Tokens and when to refresh them.

Modelled on google-auth's ``Credentials`` (valid / expired) and botocore's ``RefreshableCredentials``:
inside the *advisory* window a refresh is attempted but the current token is still served if the
refresh fails; inside the *mandatory* window (or once expired) the token is not served any more.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SUMMARY_CLAIMS = ("iss", "sub", "aud", "scope", "client_id", "exp", "iat")


@dataclass(frozen=True)
class Token:
    """An issued credential: the header value's secret part, its lifetime and a claims summary.

    ``value`` never appears in ``repr``; ``claims`` holds only non-secret claims for display.
    """

    value: str = field(repr=False)
    issued_at: float
    expires_at: float
    flow: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    kid: str | None = None

    @property
    def lifetime(self) -> float:
        return max(0.0, self.expires_at - self.issued_at)

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        return self.remaining(now) <= 0


@dataclass(frozen=True)
class RefreshPolicy:
    """Advisory margin = min(max(min_margin, fraction * lifetime), lifetime / 2); mandatory = a fifth of that."""

    min_margin: float = 60.0
    fraction: float = 0.1

    def advisory_margin(self, token: Token) -> float:
        lifetime = token.lifetime
        return min(max(self.min_margin, self.fraction * lifetime), lifetime / 2)

    def mandatory_margin(self, token: Token) -> float:
        return self.advisory_margin(token) / 5

    def fresh(self, token: Token, now: float | None = None) -> bool:
        """Serve without trying to refresh."""
        return token.remaining(now) > self.advisory_margin(token)

    def usable(self, token: Token, now: float | None = None) -> bool:
        """Still good enough to serve when a refresh fails."""
        return token.remaining(now) > self.mandatory_margin(token)


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, payload) of a JWS compact token, decoded without verification; None if it is not one.

    Used only to read ``exp``/``kid`` and to show claims; the gateway is what verifies the token.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, payload = (json.loads(_b64url(p)) for p in parts[:2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return header, payload


def claims_summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in _SUMMARY_CLAIMS if k in payload}


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
