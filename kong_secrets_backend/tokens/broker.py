"""The token broker: serve a cached token while it is fresh, refresh it once when it is not.

Two tiers: the process's :class:`~kong_secrets_backend.cache.memory.MemoryTokenCache`, and with
``token_cache: "file"`` or a Redis URL a shared :class:`~kong_secrets_backend.cache.TokenCache` behind it.

- fresh (before this process's jittered refresh point): served from memory, no lock, no I/O (the hot path);
- otherwise the shared cache is read first: another process or host may already hold a newer token;
- advisory window: one caller refreshes (a non-blocking lock in the process, then in the shared cache);
  everybody else keeps the current token, and if the refresh fails the current token is still served
  (the identity provider may be down) and the next attempt waits a few seconds;
- mandatory window or no token: callers wait for the one minting caller (single flight in the process,
  then across processes and hosts), then read what it minted. A waiter that has waited half its deadline
  mints for itself: a stuck peer delays a resolution but never fails it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from kong_secrets_backend.airflow_bridge import metrics
from kong_secrets_backend.errors import DeadlineExceeded, KongAuthError
from kong_secrets_backend.flows.identity import token_key
from kong_secrets_backend.tokens import Origin, TokenState
from kong_secrets_backend.transport.retry import with_retries

if TYPE_CHECKING:
    from kong_secrets_backend.cache import TokenCache
    from kong_secrets_backend.cache.memory import CachedToken, MemoryTokenCache
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.tokens import RefreshPolicy, Token
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)

RETRY_AFTER_FAILED_REFRESH = 5.0  # seconds between advisory refresh attempts while the IdP fails
LOCK_HOLD_MARGIN = 1.0  # a shared lock outlives the holder's deadline by this much, then expires


class Obtained(NamedTuple):  # a tuple: built on every resolution (the hot path)
    token: Token
    origin: Origin


class TokenBroker:
    def __init__(
        self,
        cache: MemoryTokenCache,
        policy: RefreshPolicy,
        shared: TokenCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache  # this process's tokens, in front of every mode
        self.policy = policy
        self.shared = shared  # the host's (file) or fleet's (redis) cache, or None (memory)
        self.clock = clock
        self.mints = 0

    def token(self, flow: TokenFlow, deadline: Deadline, *, label: str = "", force: bool = False) -> Token:
        return self.obtain(flow, deadline, label=label, force=force).token

    def obtain(self, flow: TokenFlow, deadline: Deadline, *, label: str = "", force: bool = False) -> Obtained:
        """A token for the flow and where it came from: cached while fresh, else refreshed; ``force`` mints one
        now whatever is cached (a retried task's first resolution: the cached token may be the revoked one)."""
        # The memory tier's key (shared caches use flow.cache_key(): _shared_for): token_key(flow), inlined.
        try:
            key = flow.token_key()  # type: ignore[attr-defined]
        except AttributeError:  # a flow without one
            key = flow.cache_key()
        if force:
            with self.cache.lock(key, timeout=deadline.remaining()) as acquired:
                if not acquired:
                    raise DeadlineExceeded("timed out waiting for another resolution to mint the token")
                return self._mint(flow, key, deadline, label)
        entry = self.cache.entry(key)
        if entry is not None and self.clock() < entry.refresh_at:  # TokenState.FRESH, inlined: the hot path
            metrics.cache_hit(flow.name)
            return Obtained(entry.token, Origin.MEMORY)
        return self._refresh(flow, key, deadline, label)

    def peek(self, flow: TokenFlow, *, usable: bool = False) -> Token | None:
        """The flow's cached token if still before its refresh point (or, with ``usable``, still servable);
        never mints, never waits."""
        key = token_key(flow)
        now = self.clock()
        entry = self.cache.entry(key)
        if entry is not None and now < (entry.usable_until if usable else entry.refresh_at):
            return entry.token
        shared, name, secret = self._shared_for(flow)
        if shared is not None:
            found = shared.get(name, secret)
            if found is not None:
                kept = self._remember(key, found)
                if now < (kept.usable_until if usable else kept.refresh_at):
                    return found
        return None

    # -- the slow path ----------------------------------------------------------------------------

    def _refresh(self, flow: TokenFlow, key: str, deadline: Deadline, label: str) -> Obtained:
        """The token is STALE (advisory window) or INVALID (mandatory window, or none): see the shared tier first."""
        shared, name, secret = self._shared_for(flow)
        local = self._usable_local(key)
        current = Obtained(local, Origin.MEMORY) if local is not None else None
        if shared is not None:
            found = shared.get(name, secret)
            if found is not None and (current is None or found.expires_at > current.token.expires_at):
                state = self._remember(key, found).state(self.clock())
                if state is TokenState.FRESH:
                    metrics.cache_hit(flow.name)
                    return Obtained(found, Origin.SHARED)
                if state is TokenState.STALE:
                    current = Obtained(found, Origin.SHARED)
        if current is not None:
            return self._advisory_refresh(flow, key, current, deadline, label)
        return self._mandatory_refresh(flow, key, deadline, label)

    def _advisory_refresh(
        self, flow: TokenFlow, key: str, current: Obtained, deadline: Deadline, label: str
    ) -> Obtained:
        shared, name, secret = self._shared_for(flow)
        with self.cache.lock(key, timeout=0) as acquired:
            if not acquired:  # another thread of this process is refreshing: keep serving the current token
                return current
            latest = self.cache.entry(key)
            if latest is not None and latest.token.expires_at > current.token.expires_at:
                return Obtained(latest.token, Origin.MEMORY)  # refreshed by another thread meanwhile
            if shared is None:
                return self._mint_or_keep(flow, key, current, deadline, label)
            with shared.lock(name, timeout=0, hold=deadline.remaining() + LOCK_HOLD_MARGIN) as got_shared:
                if not got_shared:  # another process or host is refreshing
                    return current
                found = shared.get(name, secret)
                if found is not None and found.expires_at > current.token.expires_at:
                    self._remember(key, found)
                    return Obtained(found, Origin.SHARED)
                return self._mint_or_keep(flow, key, current, deadline, label)

    def _mandatory_refresh(self, flow: TokenFlow, key: str, deadline: Deadline, label: str) -> Obtained:
        shared, name, secret = self._shared_for(flow)
        with self.cache.lock(key, timeout=deadline.remaining()) as acquired:
            if not acquired:
                raise DeadlineExceeded("timed out waiting for another resolution to mint the token")
            current = self._usable_local(key)
            if current is not None:  # minted by another thread while this one waited
                return Obtained(current, Origin.MEMORY)
            if shared is None:
                return self._mint(flow, key, deadline, label)
            wait = max(0.0, deadline.remaining() / 2)
            with shared.lock(name, timeout=wait, hold=deadline.remaining() + LOCK_HOLD_MARGIN) as got_shared:
                found = shared.get(name, secret)
                if found is not None and self.policy.usable(found, now=self.clock()):
                    self._remember(key, found)
                    metrics.cache_hit(flow.name)
                    return Obtained(found, Origin.SHARED)
                if not got_shared:
                    log.info(
                        "kong-secrets-backend: waited %.1fs for another process to mint the token for %s; "
                        "minting it here",
                        wait,
                        label or flow.name,
                    )
                return self._mint(flow, key, deadline, label)

    def _mint_or_keep(self, flow: TokenFlow, key: str, current: Obtained, deadline: Deadline, label: str) -> Obtained:
        try:
            return self._mint(flow, key, deadline, label, retry=False)  # a token is in hand: no retries
        except KongAuthError as exc:
            log.warning(
                "kong-secrets-backend: refreshing the token for %s failed (%s); serving the current token, "
                "valid for %.0fs more",
                label or flow.name,
                exc,
                current.token.remaining(self.clock()),
            )
            entry = self.cache.entry(key)
            if entry is not None and entry.token is current.token:  # back off: do not ask a failing IdP each call
                retry_at = min(self.clock() + RETRY_AFTER_FAILED_REFRESH, entry.usable_until)
                self.cache.put(key, current.token, refresh_at=retry_at, usable_until=entry.usable_until)
            return current

    def _mint(self, flow: TokenFlow, key: str, deadline: Deadline, label: str, *, retry: bool = True) -> Obtained:
        started = time.monotonic()
        if retry:  # no usable token: transient failures are retried within the deadline
            what = f"minting a token for {label or flow.name}"
            token = with_retries(lambda: flow.mint(deadline), deadline, what=what)
        else:
            token = flow.mint(deadline)
        self._remember(key, token)
        shared, name, secret = self._shared_for(flow)
        if shared is not None:
            shared.put(name, secret, token)
        self.mints += 1
        metrics.mint(flow.name, time.monotonic() - started)
        log.info(
            "kong-secrets-backend: minted a %s token for %s in %.0f ms, expires in %.0fs%s",
            flow.name,
            label or "?",
            (time.monotonic() - started) * 1000,
            token.remaining(self.clock()),
            f", kid {token.kid}" if token.kid else "",
        )
        return Obtained(token, Origin.MINTED)

    # -- helpers ----------------------------------------------------------------------------------

    def _remember(self, key: str, token: Token) -> CachedToken:
        return self.cache.put(
            key, token, refresh_at=self.policy.refresh_at(token), usable_until=self.policy.usable_until(token)
        )

    def _usable_local(self, key: str) -> Token | None:
        entry = self.cache.entry(key)
        if entry is not None and entry.state(self.clock()) is not TokenState.INVALID:
            return entry.token
        return None

    def _shared_for(self, flow: TokenFlow) -> tuple[TokenCache | None, str, bytes]:
        """The shared cache, the entry's name there (the flow's cache_key: non-secret identity only) and the
        flow's sealing secret; (None, "", b"") when the token stays in this process."""
        if self.shared is None:
            return None, "", b""
        cache_secret = getattr(flow, "cache_secret", None)  # flows without one keep their tokens in memory
        secret = cache_secret() if cache_secret is not None else None
        if not secret:
            return None, "", b""
        return self.shared, flow.cache_key(), secret
