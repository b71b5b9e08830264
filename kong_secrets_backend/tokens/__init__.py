"""Tokens and when to refresh them.

Modelled on google-auth's ``Credentials`` (valid / expired) and botocore's ``RefreshableCredentials``:
inside the *advisory* window a refresh is attempted but the current token is still served if the
refresh fails; inside the *mandatory* window (or once expired) the token is not served any more.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

_SUMMARY_CLAIMS = ("iss", "sub", "aud", "scope", "client_id", "exp", "iat", "jti")


class TokenState(Enum):
    """Where a cached token stands, as google-auth names it (the times come from :class:`RefreshPolicy`)."""

    FRESH = "fresh"  # before this process's refresh point: served as is
    STALE = "stale"  # advisory window: one caller refreshes, the token is still served (also if that fails)
    INVALID = "invalid"  # mandatory window or expired (or no token): a new one is needed before serving


class Origin(Enum):
    """Where a served token came from."""

    MEMORY = "memory"  # this process's cache
    SHARED = "shared"  # the host's (file) or the fleet's (redis) cache
    MINTED = "minted"  # obtained from the identity provider (or signed) by this resolution
    PREVIOUS_VERSION = "previous_version"  # a rotation's replaced credential version, until its token ages
    STATIC = "static"  # key_auth: the key itself, nothing minted or cached


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
    """When to refresh a token, in the manner of botocore's refreshable credentials.

    - advisory margin = min(max(min_margin, fraction * lifetime), lifetime / 2): inside it one caller
      refreshes and everybody keeps the current token, also when the refresh fails;
    - mandatory margin = a fifth of that: inside it the token is not served any more;
    - jitter: each process starts its advisory refresh up to ``jitter`` x the advisory margin earlier, at a
      random point drawn per token (:meth:`refresh_at`), so that the processes and hosts holding the same
      token do not all try to refresh it at the same moment. Jitter only ever moves a refresh earlier, and
      never before half the token's lifetime.
    """

    min_margin: float = 60.0
    fraction: float = 0.1
    jitter: float = 0.5

    def advisory_margin(self, token: Token) -> float:
        lifetime = token.lifetime
        return min(max(self.min_margin, self.fraction * lifetime), lifetime / 2)

    def mandatory_margin(self, token: Token) -> float:
        return self.advisory_margin(token) / 5

    def fresh(self, token: Token, now: float | None = None) -> bool:
        """Serve without trying to refresh (the advisory point without jitter)."""
        return token.remaining(now) > self.advisory_margin(token)

    def usable(self, token: Token, now: float | None = None) -> bool:
        """Still good enough to serve when a refresh fails."""
        return token.remaining(now) > self.mandatory_margin(token)

    def refresh_at(self, token: Token, u: float | None = None) -> float:
        """The time at which this process should start refreshing token (``u`` in [0, 1), random by default)."""
        margin = self.advisory_margin(token)
        if self.jitter > 0:
            draw = random.random() if u is None else u
            margin = min(margin * (1 + self.jitter * draw), max(margin, token.lifetime / 2))
        return token.expires_at - margin

    def usable_until(self, token: Token) -> float:
        """The time after which token is not served any more (the mandatory window starts)."""
        return token.expires_at - self.mandatory_margin(token)


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
