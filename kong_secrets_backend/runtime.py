"""What one process keeps per backend settings: the source client, the HTTP session, the caches.

Airflow builds the backend at import time in every process and may build it again; instances with
the same settings share one Runtime, so the Vault login, the token cache and the credential cache
survive a second construction.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.cache import build_shared_cache
from kong_secrets_backend.cache.memory import PROCESS_TOKEN_CACHE
from kong_secrets_backend.cache.records import RecordCache
from kong_secrets_backend.sources import build_source
from kong_secrets_backend.tokens import RefreshPolicy
from kong_secrets_backend.tokens.broker import TokenBroker
from kong_secrets_backend.transport.http import HttpTransport

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource

_CREDENTIAL_CACHE_SIZE = 1024


@dataclass
class Runtime:
    config: Settings
    source: SecretSource
    broker: TokenBroker
    http: HttpTransport
    # Parsed Kong connection secrets and shared credentials, kept for credential_cache_ttl seconds.
    records: RecordCache[tuple[str, ...], Any] = field(repr=False)
    records_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The last parsed Kong connection per key, kept past credential_cache_ttl: when a new credential version
    # appears, the old version's token keeps being served until it nears expiry.
    previous: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)
    # (task try, cache key) pairs that already forced a fresh mint in this process.
    forced: set[tuple[Any, ...]] = field(default_factory=set, repr=False)


_RUNTIMES: dict[str, Runtime] = {}
_LOCK = threading.Lock()


def runtime_for(config: Settings) -> Runtime:
    """The process-wide Runtime for these settings, built on first use (no I/O here either)."""
    runtime = _RUNTIMES.get(config.fingerprint)
    if runtime is not None:
        return runtime
    with _LOCK:
        runtime = _RUNTIMES.get(config.fingerprint)
        if runtime is None:
            runtime = Runtime(
                config=config,
                source=build_source(config),
                broker=TokenBroker(
                    PROCESS_TOKEN_CACHE,
                    RefreshPolicy(
                        min_margin=config.refresh_margin_min,
                        fraction=config.refresh_margin_fraction,
                        jitter=config.refresh_jitter,
                    ),
                    shared=build_shared_cache(config.token_cache, config.token_cache_dir),
                ),
                http=HttpTransport(),
                records=RecordCache(maxsize=_CREDENTIAL_CACHE_SIZE, ttl=config.credential_cache_ttl),
            )
            _RUNTIMES[config.fingerprint] = runtime
        return runtime


def reset_runtimes() -> None:
    """Forget every runtime (tests; a process that changes its settings)."""
    with _LOCK:
        _RUNTIMES.clear()


# Module-level locks of other modules, re-created in a forked child when those modules are loaded.
_MODULE_LOCKS = (
    ("kong_secrets_backend.airflow_bridge.metrics", "_counts_lock"),
    ("kong_secrets_backend.flows.discovery", "_LOCK"),
    ("kong_secrets_backend.flows.vault_identity", "_JWKS_LOCK"),
)


def _after_fork_in_child() -> None:
    """Celery prefork: a child must not use its parent's locks (a vanished thread may hold one), sockets or
    logged-in clients. Settings, parsed secrets and tokens stay; connections are made again on first use."""
    global _LOCK
    _LOCK = threading.Lock()
    for module_name, attr in _MODULE_LOCKS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            setattr(module, attr, threading.Lock())
    for runtime in list(_RUNTIMES.values()):
        runtime.records_lock = threading.Lock()
        runtime.records.after_fork()
        for part in (runtime.http, runtime.source):
            after_fork = getattr(part, "after_fork", None)
            if after_fork is not None:
                after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
