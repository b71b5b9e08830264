"""Vault source settings: the keyword arguments of Airflow's VaultBackend, parsed once, without I/O.

Names, defaults and the checks made at construction are those of
``airflow.providers.hashicorp.secrets.vault.VaultBackend`` (and its ``_VaultClient``), so switching is a
change of class name. One auth type of this project's own is added: ``cert`` (TLS client certificate).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.config_values import as_bool, as_paths
from kong_secrets_backend.errors import ConfigError

DEFAULT_KUBERNETES_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# Vault auth types with the names of Airflow's VaultBackend, in its order.
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
# Ours: TLS certificate auth (Vault's `cert` method), with the client certificate of the `cert` kwarg.
VAULT_AUTH_TYPES = (*OFFICIAL_VAULT_AUTH_TYPES, "cert")
SUPPORTED_VAULT_AUTH_TYPES = VAULT_AUTH_TYPES

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
    # ours: the role of the `cert` auth method to log in with (Vault tries every role when unset)
    "cert_role": None,
}
# Extra kwargs VaultBackend forwards to hvac.Client.
HVAC_CLIENT_KWARGS = ("verify", "cert", "namespace", "proxies", "timeout")

# The kwargs each auth type logs in with (kept in VaultAuth.params when set).
_AUTH_PARAMS: dict[str, tuple[str, ...]] = {
    "token": ("token", "token_path"),
    "github": ("token", "token_path"),
    "approle": ("role_id", "secret_id"),
    "userpass": ("username", "password"),
    "ldap": ("username", "password"),
    "jwt": ("jwt_role", "jwt_token", "jwt_token_path"),
    "kubernetes": ("kubernetes_role", "kubernetes_jwt_path"),
    "aws_iam": ("key_id", "secret_id", "role_id", "assume_role_kwargs", "region"),
    "azure": ("azure_tenant_id", "azure_resource", "key_id", "secret_id"),
    "gcp": ("gcp_key_path", "gcp_keyfile_dict", "gcp_scopes", "role_id"),
    "radius": ("radius_host", "radius_secret", "radius_port"),
    "cert": ("cert", "cert_role"),
}
# Parameters whose values are secrets: masked, and never in a repr.
_SECRET_PARAMS = ("token", "secret_id", "password", "jwt_token", "radius_secret")


@dataclass(frozen=True)
class VaultAuth:
    """How to log in to Vault: the auth type, its mount, and its parameters (secrets hidden from repr)."""

    type: str
    mount_point: str | None
    params: Mapping[str, Any] = field(repr=False)

    def secret_values(self) -> tuple[str, ...]:
        """The values that must be masked in logs."""
        values = [str(self.params[k]) for k in _SECRET_PARAMS if self.params.get(k)]
        keyfile = self.params.get("gcp_keyfile_dict")
        if isinstance(keyfile, Mapping) and keyfile.get("private_key"):
            values.append(str(keyfile["private_key"]))
        return tuple(values)

    @property
    def renews_by_login(self) -> bool:
        """True when the backend obtains its token by logging in (so it may revoke and log in again)."""
        return self.type not in ("token", "azure", "radius")


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
    if auth_type not in VAULT_AUTH_TYPES:
        raise ConfigError(f"auth_type {auth_type!r} is not one of {', '.join(VAULT_AUTH_TYPES)}")
    kv = values["kv_engine_version"]
    if kv not in (1, 2):
        raise ConfigError("kv_engine_version must be 1 or 2")
    _check_types(values)
    client_kwargs = _client_kwargs(kwargs)
    _check_auth(auth_type, values, client_kwargs)
    connections = as_paths("connections_path", values["connections_path"])
    variables = as_paths("variables_path", values["variables_path"])
    config = as_paths("config_path", values["config_path"])
    if values["global_secrets_path"] is not None:
        extra = str(values["global_secrets_path"]).rstrip("/")
        connections, variables, config = ((*(p or ()), extra) for p in (connections, variables, config))
    params = {k: _param(k, values, client_kwargs) for k in _AUTH_PARAMS[auth_type]}
    params = {k: v for k, v in params.items() if v is not None}
    if auth_type == "token" and "token" not in params and "token_path" not in params:
        params["token"] = os.environ["VAULT_TOKEN"]  # _check_auth made sure it is there
    return VaultSettings(
        url=values["url"],
        auth=VaultAuth(type=auth_type, mount_point=values["auth_mount_point"], params=params),
        mount_point=values["mount_point"] or None,
        kv_engine_version=kv,
        connections_path=connections,
        variables_path=variables,
        config_path=config,
        use_team_secrets_path=as_bool("use_team_secrets_path", values["use_team_secrets_path"]),
        client_kwargs=client_kwargs,
    )


def _param(name: str, values: Mapping[str, Any], client_kwargs: Mapping[str, Any]) -> Any:
    return client_kwargs.get("cert") if name == "cert" else values[name]


_STRING_KWARGS = (
    "url",
    "auth_mount_point",
    "mount_point",
    "token",
    "token_path",
    "username",
    "password",
    "key_id",
    "secret_id",
    "role_id",
    "region",
    "kubernetes_role",
    "kubernetes_jwt_path",
    "gcp_key_path",
    "gcp_scopes",
    "azure_tenant_id",
    "azure_resource",
    "radius_host",
    "radius_secret",
    "jwt_role",
    "jwt_token",
    "jwt_token_path",
    "cert_role",
)


def _check_types(values: Mapping[str, Any]) -> None:
    for name in _STRING_KWARGS:
        if values[name] is not None and not isinstance(values[name], str):
            raise ConfigError(f"{name} must be a string")
    for name in ("assume_role_kwargs", "gcp_keyfile_dict"):
        if values[name] is not None and not isinstance(values[name], Mapping):
            raise ConfigError(f"{name} must be a JSON object")
    port = values["radius_port"]
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ConfigError("radius_port must be an integer")


def _client_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: kwargs[k] for k in HVAC_CLIENT_KWARGS if k in kwargs}
    cert = out.get("cert")
    if cert is not None:
        if isinstance(cert, str):
            out["cert"] = cert
        elif isinstance(cert, (list, tuple)) and len(cert) == 2 and all(isinstance(p, str) for p in cert):
            out["cert"] = tuple(cert)
        else:
            raise ConfigError("cert must be a path, or a list of two paths [certificate, key]")
    verify = out.get("verify")
    if verify is not None and not isinstance(verify, (bool, str)):
        raise ConfigError("verify must be true, false or the path of a CA bundle")
    timeout = out.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError("timeout must be a positive number of seconds")
    return out


def _check_auth(auth_type: str, values: Mapping[str, Any], client_kwargs: Mapping[str, Any]) -> None:
    """The checks of Airflow's _VaultClient, with the keyword named (plus a few it leaves to the first login)."""

    def need(*names: str) -> None:
        for name in names:
            if not values[name]:
                raise ConfigError(f"auth_type {auth_type!r} requires {name!r}")

    def need_one(a: str, b: str, *, env: str | None = None) -> None:
        if not values[a] and not values[b] and (env is None or env not in os.environ):
            alternative = f" (or {env})" if env else ""
            raise ConfigError(f"auth_type {auth_type!r} requires {a!r} or {b!r}{alternative}")

    if auth_type == "token":
        need_one("token", "token_path", env="VAULT_TOKEN")
    elif auth_type == "github":
        need_one("token", "token_path")
    elif auth_type == "approle":
        need("role_id")
    elif auth_type in ("userpass", "ldap"):
        need("username")
    elif auth_type == "kubernetes":
        need("kubernetes_role", "kubernetes_jwt_path")
    elif auth_type == "jwt":
        need("jwt_role")
        need_one("jwt_token", "jwt_token_path")
    elif auth_type == "azure":
        need("azure_resource", "azure_tenant_id")
    elif auth_type == "radius":
        need("radius_host", "radius_secret")
    elif auth_type == "gcp":
        need("gcp_scopes", "role_id")
    elif auth_type == "cert":
        if not client_kwargs.get("cert"):
            raise ConfigError("auth_type 'cert' requires 'cert' (the client certificate and key paths)")
        if not str(values["url"] or "").lower().startswith("https://"):
            raise ConfigError("auth_type 'cert' requires an https:// url (the certificate is presented in TLS)")
