"""Everything one process keeps between resolutions, in one place.

Airflow builds the backend at import time in every process and may build it again; instances with the
same settings share one :class:`Runtime` (the Vault login, the HTTP session, the parsed secrets, the token
keeper). The process-wide parts (runtimes, this process's token cache, the shared caches' clients) live in
:data:`PROCESS`. Every map here is bounded, and one function, :meth:`ProcessState.after_fork`, makes a
forked child (Celery prefork) safe: new locks, new sockets and clients; settings, parsed secrets and tokens
stay.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.cache import build_shared_cache
from kong_secrets_backend.cache.bounded import BoundedMap
from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.sources import build_source
from kong_secrets_backend.tokens import RefreshPolicy
from kong_secrets_backend.tokens.broker import TokenBroker
from kong_secrets_backend.tokens.keeper import TokenKeeper
from kong_secrets_backend.transport.http import HttpTransport

if TYPE_CHECKING:
    from kong_secrets_backend.cache import TokenCache
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource

MAX_RUNTIMES = 64  # distinct backend settings in one process (tests, `check`): far above real use
MAX_CONNECTIONS = 16_384  # parsed Kong connections and shared credentials per runtime
MAX_AUDITED_USES = 65_536  # (task try, token) pairs already in the audit trail
MAX_DOCUMENTS = 1024  # discovery documents and JWKS: one per issuer or Vault identity
DISCOVERY_TTL = 900.0  # seconds an OpenID discovery document is reused
JWKS_TTL = 300.0  # seconds Vault's identity JWKS is reused (a new signing key is fetched on an unknown kid)


@dataclass
class Runtime:
    """What one process keeps for one set of backend settings."""

    settings: Settings
    source: SecretSource
    broker: TokenBroker
    keeper: TokenKeeper
    http: HttpTransport
    # Shared credentials read by credentials_path, kept for credential_cache_ttl seconds.
    records: BoundedMap[tuple[str, ...], Any] = field(repr=False)
    # Task-scoped variants of connections (task_scopes), with the connection version they derive from.
    scoped: BoundedMap[tuple[str, ...], Any] = field(repr=False, default_factory=lambda: BoundedMap(MAX_CONNECTIONS))
    # The Resolution last returned per connection, with the version, token and headers it was made for.
    returned: BoundedMap[tuple[str, ...], Any] = field(repr=False, default_factory=lambda: BoundedMap(MAX_CONNECTIONS))

    def after_fork(self) -> None:
        self.records.after_fork()
        self.returned.clear()  # so that a child masks each token again, telling its own supervisor
        self.returned.after_fork()
        self.scoped.after_fork()
        self.keeper.after_fork()
        for part in (self.http, self.source):
            after_fork = getattr(part, "after_fork", None)
            if after_fork is not None:
                after_fork()


class ProcessState:
    """The process-wide state: runtimes by settings fingerprint, the token cache, the shared caches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runtimes: BoundedMap[str, Runtime] = BoundedMap(MAX_RUNTIMES)
        self.tokens = MemoryTokenCache()  # every runtime's tokens: one cache for the whole process
        self.shared_caches: dict[tuple[str, str | None], TokenCache | None] = {}  # one per token_cache setting
        # Documents fetched from peers: OpenID discovery by (issuer, endpoint policy, ca_bundle), JWKS by Vault
        # identity.
        self.discovery: BoundedMap[tuple[str, bool, str | None], dict[str, Any]] = BoundedMap(
            MAX_DOCUMENTS, ttl=DISCOVERY_TTL
        )
        self.jwks: BoundedMap[str, dict[str, Any]] = BoundedMap(MAX_DOCUMENTS, ttl=JWKS_TTL)
        self.audited_uses: BoundedMap[tuple[Any, ...], bool] = BoundedMap(MAX_AUDITED_USES)

    def runtime(self, settings: Settings) -> Runtime:
        """The Runtime for these settings, built on first use (no I/O here either)."""
        runtime = self.runtimes.get(settings.fingerprint)
        if runtime is not None:
            return runtime
        with self._lock:
            runtime = self.runtimes.get(settings.fingerprint)
            if runtime is None:
                broker = TokenBroker(
                    self.tokens,
                    RefreshPolicy(
                        min_margin=settings.refresh_margin_min,
                        fraction=settings.refresh_margin_fraction,
                        jitter=settings.refresh_jitter,
                    ),
                    shared=self._shared_cache(settings.token_cache, settings.token_cache_dir),
                )
                runtime = Runtime(
                    settings=settings,
                    source=build_source(
                        settings.source, vault=settings.vault, aws=settings.aws, deadline=settings.deadline
                    ),
                    broker=broker,
                    keeper=TokenKeeper(broker),
                    http=HttpTransport(verify=settings.ca_bundle or True),
                    records=BoundedMap(MAX_CONNECTIONS, ttl=settings.credential_cache_ttl),
                )
                self.runtimes[settings.fingerprint] = runtime
            return runtime

    def _shared_cache(self, mode: str, directory: str | None) -> TokenCache | None:
        key = (mode, directory)
        if key not in self.shared_caches:  # called under self._lock
            self.shared_caches[key] = build_shared_cache(mode, directory)
        return self.shared_caches[key]

    def reset(self) -> None:
        """Forget every runtime (tests; a process that changes its settings). Tokens stay cached."""
        with self._lock:
            self.runtimes.clear()

    def after_fork(self) -> None:
        """In a forked child: a lock held by a vanished thread, a socket or a logged-in client of the parent
        must not be used. Settings, parsed secrets and tokens stay; connections are made again on first use."""
        self._lock = threading.Lock()
        for bounded in (self.runtimes, self.discovery, self.jwks, self.audited_uses):
            bounded.after_fork()
        self.tokens.after_fork()
        for cache in self.shared_caches.values():
            if cache is not None:
                cache.after_fork()
        for fingerprint in self.runtimes:
            runtime = self.runtimes.get(fingerprint)
            if runtime is not None:
                runtime.after_fork()


PROCESS = ProcessState()


def runtime_for(settings: Settings) -> Runtime:
    return PROCESS.runtime(settings)


def reset_runtimes() -> None:
    PROCESS.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: PROCESS.after_fork())
