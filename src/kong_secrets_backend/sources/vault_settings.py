"""Vault source settings: the keyword arguments of Airflow's VaultBackend, parsed once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.config_values import as_bool, as_paths
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
VAULT_KWARGS: dict[str, Any] = {
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
HVAC_CLIENT_KWARGS = ("verify", "cert", "namespace", "proxies", "timeout")


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


def parse_vault_settings(kwargs: Mapping[str, Any]) -> VaultSettings:
    values = {**VAULT_KWARGS, **{k: v for k, v in kwargs.items() if k in VAULT_KWARGS}}
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
    connections = as_paths("connections_path", values["connections_path"])
    variables = as_paths("variables_path", values["variables_path"])
    config = as_paths("config_path", values["config_path"])
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
        use_team_secrets_path=as_bool("use_team_secrets_path", values["use_team_secrets_path"]),
        client_kwargs={k: kwargs[k] for k in HVAC_CLIENT_KWARGS if k in kwargs},
    )
