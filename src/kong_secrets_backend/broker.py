"""The token broker: serve a cached token while it is fresh, refresh it once when it is not.

- fresh: served from the cache, no lock taken (the hot path);
- advisory window: one caller refreshes; everyone else keeps the current token, and if the refresh
  fails the current token is still served (the identity provider may be down);
- mandatory window or no token: callers wait for the one minting caller (single flight) and a failure
  is raised.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from kong_secrets_backend.errors import DeadlineExceeded, KongAuthError

if TYPE_CHECKING:
    from kong_secrets_backend.cache import TokenCache
    from kong_secrets_backend.deadline import Deadline
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.tokens import RefreshPolicy, Token

log = logging.getLogger(__name__)


class TokenBroker:
    def __init__(self, cache: TokenCache, policy: RefreshPolicy) -> None:
        self.cache = cache
        self.policy = policy
        self.mints = 0

    def token(self, flow: TokenFlow, deadline: Deadline, *, label: str = "") -> Token:
        key = flow.cache_key()
        current = self.cache.get(key)
        if current is not None and self.policy.fresh(current):
            return current
        if current is not None and self.policy.usable(current):
            return self._advisory_refresh(flow, key, current, deadline, label)
        with self.cache.lock(key, timeout=deadline.remaining()) as acquired:
            if not acquired:
                raise DeadlineExceeded("timed out waiting for another resolution to mint the token")
            current = self.cache.get(key)
            if current is not None and self.policy.usable(current):
                return current
            return self._mint(flow, key, deadline, label)

    def _advisory_refresh(self, flow: TokenFlow, key: str, current: Token, deadline: Deadline, label: str) -> Token:
        with self.cache.lock(key, timeout=0) as acquired:
            if not acquired:  # somebody else is refreshing: keep serving the current token
                return current
            latest = self.cache.get(key)
            if latest is not None and self.policy.fresh(latest):
                return latest
            try:
                return self._mint(flow, key, deadline, label)
            except KongAuthError as exc:
                log.warning(
                    "kong-secrets-backend: refreshing the token for %s failed (%s); serving the current token, "
                    "valid for %.0fs more",
                    label or flow.name,
                    exc,
                    current.remaining(),
                )
                return current

    def _mint(self, flow: TokenFlow, key: str, deadline: Deadline, label: str) -> Token:
        started = time.monotonic()
        token = flow.mint(deadline)
        self.cache.put(key, token)
        self.mints += 1
        log.info(
            "kong-secrets-backend: minted a %s token for %s in %.0f ms, expires in %.0fs%s",
            flow.name,
            label or "?",
            (time.monotonic() - started) * 1000,
            token.remaining(),
            f", kid {token.kid}" if token.kid else "",
        )
        return token
