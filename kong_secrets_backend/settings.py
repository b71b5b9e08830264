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

from kong_secrets_backend.cache.settings import parse_token_cache
from kong_secrets_backend.config_values import as_bool, as_number
from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.sources import SOURCES
from kong_secrets_backend.sources.aws_settings import AWS_KWARGS, AwsSettings, parse_aws_settings
from kong_secrets_backend.sources.vault_settings import (
    HVAC_CLIENT_KWARGS,
    VAULT_KWARGS,
    VaultSettings,
    parse_vault_settings,
)


@dataclass(frozen=True)
class BackendConfig:
    """Everything the backend needs, parsed from its kwargs."""

    source: str
    vault: VaultSettings | None
    token_cache: str = field(default="memory", repr=False)  # "memory", "file" or a Redis URL (may hold a password)
    token_cache_dir: str | None = None  # token_cache "file": the directory (default under $XDG_CACHE_HOME)
    allow_insecure_http: bool = False
    deadline: float = 10.0
    credential_cache_ttl: float = 60.0
    refresh_margin_min: float = 60.0
    refresh_margin_fraction: float = 0.1
    refresh_jitter: float = 0.5  # refresh up to this fraction of the advisory margin earlier, at random
    default_token_ttl: float = 300.0  # token lifetime when the IdP sends neither expires_in nor a JWT exp
    task_headers: bool = True  # X-Airflow-Dag-Id/-Task-Id/-Run-Id/-Try-Number on Kong connections (trace_headers.py)
    traceparent: bool = True  # W3C traceparent of the active OpenTelemetry span on Kong connections
    fast_masking: bool = True  # give Airflow's secrets masker a token index (masking.py, docs/masking.md)
    aws: AwsSettings | None = None  # source "aws": SecretsManagerBackend's settings
    fingerprint: str = field(default="", repr=False, compare=False)


_OWN_KWARGS: dict[str, Any] = {
    "source": "vault",
    "token_cache": "memory",
    "token_cache_dir": None,
    "allow_insecure_http": False,
    "deadline": 10.0,
    "credential_cache_ttl": 60.0,
    "refresh_margin_min": 60.0,
    "refresh_margin_fraction": 0.1,
    "refresh_jitter": 0.5,
    "default_token_ttl": 300.0,
    "task_headers": True,
    "traceparent": True,
    "fast_masking": True,
}


def parse_backend_kwargs(kwargs: Mapping[str, Any]) -> BackendConfig:
    """Validate backend kwargs and build the config. Raises ConfigError naming the offending keyword."""
    own = {**_OWN_KWARGS, **{k: v for k, v in kwargs.items() if k in _OWN_KWARGS}}
    source = own["source"]
    if source not in SOURCES:
        raise ConfigError(f"source {source!r} is not supported (supported: {', '.join(map(repr, SOURCES))})")
    source_kwargs = set(AWS_KWARGS) if source == "aws" else set(VAULT_KWARGS) | set(HVAC_CLIENT_KWARGS)
    other_kwargs = (set(VAULT_KWARGS) | set(HVAC_CLIENT_KWARGS) | set(AWS_KWARGS)) - source_kwargs
    unknown = sorted(set(kwargs) - set(_OWN_KWARGS) - source_kwargs)
    if unknown:
        misplaced = [k for k in unknown if k in other_kwargs]
        if misplaced:
            raise ConfigError(f"backend kwargs {', '.join(misplaced)} do not apply to source {source!r}")
        raise ConfigError(f"unknown backend kwargs: {', '.join(unknown)}")
    token_cache, token_cache_dir = parse_token_cache(own["token_cache"], own["token_cache_dir"])
    config = BackendConfig(
        source=source,
        vault=parse_vault_settings(kwargs) if source == "vault" else None,
        aws=parse_aws_settings(kwargs) if source == "aws" else None,
        token_cache=token_cache,
        token_cache_dir=token_cache_dir,
        allow_insecure_http=as_bool("allow_insecure_http", own["allow_insecure_http"]),
        deadline=as_number("deadline", own["deadline"], minimum=0.1, maximum=600),
        credential_cache_ttl=as_number("credential_cache_ttl", own["credential_cache_ttl"], minimum=0, maximum=3600),
        refresh_margin_min=as_number("refresh_margin_min", own["refresh_margin_min"], minimum=0),
        refresh_margin_fraction=as_number(
            "refresh_margin_fraction", own["refresh_margin_fraction"], minimum=0, maximum=0.5
        ),
        refresh_jitter=as_number("refresh_jitter", own["refresh_jitter"], minimum=0, maximum=1),
        default_token_ttl=as_number("default_token_ttl", own["default_token_ttl"], minimum=1, maximum=86400),
        task_headers=as_bool("task_headers", own["task_headers"]),
        traceparent=as_bool("traceparent", own["traceparent"]),
        fast_masking=as_bool("fast_masking", own["fast_masking"]),
    )
    return _with_fingerprint(config, kwargs)


def _with_fingerprint(config: BackendConfig, kwargs: Mapping[str, Any]) -> BackendConfig:
    """Settings fingerprint: equal kwargs share one process-wide runtime (Vault client, caches)."""
    canonical = json.dumps(dict(kwargs), sort_keys=True, default=repr)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    values = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "fingerprint"}
    return BackendConfig(**values, fingerprint=digest)


Settings = BackendConfig  # the name the rest of the package uses

__all__ = ["BackendConfig", "Settings", "parse_backend_kwargs"]
