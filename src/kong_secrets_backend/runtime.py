"""What one process keeps per backend settings: the source client, the HTTP session, the caches.

Airflow builds the backend at import time in every process and may build it again; instances with
the same settings share one Runtime, so the Vault login, the token cache and the credential cache
survive a second construction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from kong_secrets_backend.broker import TokenBroker
from kong_secrets_backend.cache import build_token_cache
from kong_secrets_backend.http import HttpTransport
from kong_secrets_backend.sources import build_source
from kong_secrets_backend.tokens import RefreshPolicy

if TYPE_CHECKING:
    from kong_secrets_backend.config import BackendConfig
    from kong_secrets_backend.sources import SecretSource

_CREDENTIAL_CACHE_SIZE = 1024


@dataclass
class Runtime:
    config: BackendConfig
    source: SecretSource
    broker: TokenBroker
    http: HttpTransport
    # Parsed Kong connection secrets and shared credentials, kept for credential_cache_ttl seconds.
    records: TTLCache[tuple[str, ...], Any] = field(repr=False)
    records_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_RUNTIMES: dict[str, Runtime] = {}
_LOCK = threading.Lock()


def runtime_for(config: BackendConfig) -> Runtime:
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
                    build_token_cache(config.token_cache),
                    RefreshPolicy(min_margin=config.refresh_margin_min, fraction=config.refresh_margin_fraction),
                ),
                http=HttpTransport(),
                records=TTLCache(maxsize=_CREDENTIAL_CACHE_SIZE, ttl=max(config.credential_cache_ttl, 1e-9)),
            )
            _RUNTIMES[config.fingerprint] = runtime
        return runtime


def reset_runtimes() -> None:
    """Forget every runtime (tests; a process that changes its settings)."""
    with _LOCK:
        _RUNTIMES.clear()
