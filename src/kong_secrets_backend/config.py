"""Backend kwargs, parsed once into small typed, immutable objects.

Airflow hands ``backend_kwargs`` (a JSON object) to the backend's constructor. Everything is
validated here, without I/O, so that a mistake is reported by name before the first resolution.
Secret-bearing fields are excluded from ``repr``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kong_secrets_backend.config_values import as_bool, as_number
from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.sources.vault_settings import (
    HVAC_CLIENT_KWARGS,
    VAULT_KWARGS,
    VaultSettings,
    parse_vault_settings,
)

TOKEN_CACHE_MODES = ("memory",)


@dataclass(frozen=True)
class BackendConfig:
    """Everything the backend needs, parsed from its kwargs."""

    source: str
    vault: VaultSettings | None
    token_cache: str = "memory"
    allow_insecure_http: bool = False
    deadline: float = 10.0
    credential_cache_ttl: float = 60.0
    refresh_margin_min: float = 60.0
    refresh_margin_fraction: float = 0.1
    fingerprint: str = field(default="", repr=False, compare=False)


_OWN_KWARGS: dict[str, Any] = {
    "source": "vault",
    "token_cache": "memory",
    "allow_insecure_http": False,
    "deadline": 10.0,
    "credential_cache_ttl": 60.0,
    "refresh_margin_min": 60.0,
    "refresh_margin_fraction": 0.1,
}


def parse_backend_kwargs(kwargs: Mapping[str, Any]) -> BackendConfig:
    """Validate backend kwargs and build the config. Raises ConfigError naming the offending keyword."""
    own = {**_OWN_KWARGS, **{k: v for k, v in kwargs.items() if k in _OWN_KWARGS}}
    source = own["source"]
    if source != "vault":
        raise ConfigError(f"source {source!r} is not supported by this version (supported: 'vault')")
    known = set(_OWN_KWARGS) | set(VAULT_KWARGS) | set(HVAC_CLIENT_KWARGS)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown backend kwargs: {', '.join(unknown)}")
    token_cache = own["token_cache"]
    if token_cache not in TOKEN_CACHE_MODES:
        raise ConfigError(f"token_cache {token_cache!r} is not supported by this version (supported: 'memory')")
    config = BackendConfig(
        source=source,
        vault=parse_vault_settings(kwargs),
        token_cache=token_cache,
        allow_insecure_http=as_bool("allow_insecure_http", own["allow_insecure_http"]),
        deadline=as_number("deadline", own["deadline"], minimum=0.1, maximum=600),
        credential_cache_ttl=as_number("credential_cache_ttl", own["credential_cache_ttl"], minimum=0, maximum=3600),
        refresh_margin_min=as_number("refresh_margin_min", own["refresh_margin_min"], minimum=0),
        refresh_margin_fraction=as_number(
            "refresh_margin_fraction", own["refresh_margin_fraction"], minimum=0, maximum=0.5
        ),
    )
    return _with_fingerprint(config, kwargs)


def _with_fingerprint(config: BackendConfig, kwargs: Mapping[str, Any]) -> BackendConfig:
    """Settings fingerprint: equal kwargs share one process-wide runtime (Vault client, caches)."""
    canonical = json.dumps(dict(kwargs), sort_keys=True, default=repr)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    values = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "fingerprint"}
    return BackendConfig(**values, fingerprint=digest)


__all__ = ["BackendConfig", "parse_backend_kwargs"]
