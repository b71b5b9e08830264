"""Backend kwargs, parsed once into small typed, immutable objects.

Airflow hands ``backend_kwargs`` (a JSON object) to the backend's constructor. Everything is
validated here, without I/O, so that a mistake is reported by name before the first resolution.
Secret-bearing fields are excluded from ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from kong_secrets_backend.errors import ConfigError

DEFAULT_KUBERNETES_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# Vault auth types with the names of Airflow's VaultBackend, and the ones this version logs in with.
OFFICIAL_VAULT_AUTH_TYPES = (
    "approle",
    "aws_iam",
    "azure",
    "github",
    "gcp",
    "jwt",
    "kubernetes",
    "ldap",
    "radius",
    "token",
    "userpass",
)
SUPPORTED_VAULT_AUTH_TYPES = ("approle", "token", "userpass")

# Keyword arguments of Airflow's VaultBackend (same names, same defaults).
_VAULT_KWARGS: dict[str, Any] = {
    "connections_path": "connections",
    "variables_path": "variables",
    "config_path": "config",
    "use_team_secrets_path": True,
    "global_secrets_path": None,
    "url": None,
    "auth_type": "token",
    "auth_mount_point": None,
    "mount_point": "secret",
    "kv_engine_version": 2,
    "token": None,
    "token_path": None,
    "username": None,
    "password": None,
    "key_id": None,
    "secret_id": None,
    "role_id": None,
    "assume_role_kwargs": None,
    "region": None,
    "kubernetes_role": None,
    "kubernetes_jwt_path": DEFAULT_KUBERNETES_JWT_PATH,
    "gcp_key_path": None,
    "gcp_keyfile_dict": None,
    "gcp_scopes": None,
    "azure_tenant_id": None,
    "azure_resource": None,
    "radius_host": None,
    "radius_secret": None,
    "radius_port": None,
    "jwt_role": None,
    "jwt_token": None,
    "jwt_token_path": None,
}
# Extra kwargs VaultBackend forwards to hvac.Client.
_HVAC_CLIENT_KWARGS = ("verify", "cert", "namespace", "proxies", "timeout")

TOKEN_CACHE_MODES = ("memory",)


@dataclass(frozen=True)
class VaultAuth:
    """How to log in to Vault: the auth type, its mount, and its parameters (secrets hidden from repr)."""

    type: str
    mount_point: str | None
    params: Mapping[str, Any] = field(repr=False)

    def secret_values(self) -> tuple[str, ...]:
        """The values that must be masked in logs."""
        return tuple(str(self.params[k]) for k in ("token", "secret_id", "password") if self.params.get(k))


@dataclass(frozen=True)
class VaultSettings:
    url: str | None
    auth: VaultAuth
    mount_point: str | None
    kv_engine_version: int
    connections_path: tuple[str, ...] | None
    variables_path: tuple[str, ...] | None
    config_path: tuple[str, ...] | None
    use_team_secrets_path: bool
    client_kwargs: Mapping[str, Any] = field(repr=False)


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


def _paths(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{name} must be a string, a list of strings or null")
    return tuple(p.rstrip("/") for p in value)


def _number(name: str, value: Any, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise ConfigError(f"{name} must be {bound}")
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{name} must be true or false")


def _parse_vault(kwargs: Mapping[str, Any]) -> VaultSettings:
    values = {**_VAULT_KWARGS, **{k: v for k, v in kwargs.items() if k in _VAULT_KWARGS}}
    auth_type = values["auth_type"]
    if auth_type not in OFFICIAL_VAULT_AUTH_TYPES:
        raise ConfigError(f"auth_type {auth_type!r} is not one of {', '.join(OFFICIAL_VAULT_AUTH_TYPES)}")
    if auth_type not in SUPPORTED_VAULT_AUTH_TYPES:
        raise ConfigError(
            f"auth_type {auth_type!r} is not supported by this version (supported: "
            f"{', '.join(SUPPORTED_VAULT_AUTH_TYPES)})"
        )
    kv = values["kv_engine_version"]
    if kv not in (1, 2):
        raise ConfigError("kv_engine_version must be 1 or 2")
    if auth_type == "token" and not values["token"] and not values["token_path"] and "VAULT_TOKEN" not in os.environ:
        raise ConfigError("auth_type 'token' requires 'token' or 'token_path' (or VAULT_TOKEN)")
    if auth_type == "approle" and not values["role_id"]:
        raise ConfigError("auth_type 'approle' requires 'role_id'")
    if auth_type == "userpass" and not values["username"]:
        raise ConfigError("auth_type 'userpass' requires 'username'")
    connections = _paths("connections_path", values["connections_path"])
    variables = _paths("variables_path", values["variables_path"])
    config = _paths("config_path", values["config_path"])
    if values["global_secrets_path"] is not None:
        extra = str(values["global_secrets_path"]).rstrip("/")
        connections, variables, config = ((*(p or ()), extra) for p in (connections, variables, config))
    params = {
        k: values[k]
        for k in ("token", "token_path", "role_id", "secret_id", "username", "password")
        if values[k] is not None
    }
    if auth_type == "token" and "token" not in params and "token_path" not in params:
        params["token"] = os.environ["VAULT_TOKEN"]
    return VaultSettings(
        url=values["url"],
        auth=VaultAuth(type=auth_type, mount_point=values["auth_mount_point"], params=params),
        mount_point=values["mount_point"],
        kv_engine_version=kv,
        connections_path=connections,
        variables_path=variables,
        config_path=config,
        use_team_secrets_path=_bool("use_team_secrets_path", values["use_team_secrets_path"]),
        client_kwargs={k: kwargs[k] for k in _HVAC_CLIENT_KWARGS if k in kwargs},
    )


def parse_backend_kwargs(kwargs: Mapping[str, Any]) -> BackendConfig:
    """Validate backend kwargs and build the config. Raises ConfigError naming the offending keyword."""
    own = {**_OWN_KWARGS, **{k: v for k, v in kwargs.items() if k in _OWN_KWARGS}}
    source = own["source"]
    if source != "vault":
        raise ConfigError(f"source {source!r} is not supported by this version (supported: 'vault')")
    known = set(_OWN_KWARGS) | set(_VAULT_KWARGS) | set(_HVAC_CLIENT_KWARGS)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown backend kwargs: {', '.join(unknown)}")
    token_cache = own["token_cache"]
    if token_cache not in TOKEN_CACHE_MODES:
        raise ConfigError(f"token_cache {token_cache!r} is not supported by this version (supported: 'memory')")
    config = BackendConfig(
        source=source,
        vault=_parse_vault(kwargs),
        token_cache=token_cache,
        allow_insecure_http=_bool("allow_insecure_http", own["allow_insecure_http"]),
        deadline=_number("deadline", own["deadline"], minimum=0.1, maximum=600),
        credential_cache_ttl=_number("credential_cache_ttl", own["credential_cache_ttl"], minimum=0, maximum=3600),
        refresh_margin_min=_number("refresh_margin_min", own["refresh_margin_min"], minimum=0),
        refresh_margin_fraction=_number(
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


__all__ = [
    "BackendConfig",
    "VaultAuth",
    "VaultSettings",
    "parse_backend_kwargs",
    "OFFICIAL_VAULT_AUTH_TYPES",
    "SUPPORTED_VAULT_AUTH_TYPES",
]
