"""Vault source settings: the keyword arguments of Airflow's VaultBackend, parsed once, without I/O.

Names, defaults and the checks made at construction are those of
``airflow.providers.hashicorp.secrets.vault.VaultBackend`` (and its ``_VaultClient``), so switching is a
change of class name. One auth type of this project's own is added: ``cert`` (TLS client certificate).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings_schema import Setting, as_bool, as_paths, defaults
from kong_secrets_backend.transport.urls import is_loopback

log = logging.getLogger("kong_secrets_backend")

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

# Keyword arguments of Airflow's VaultBackend (same names, same defaults), declared once; parse_vault_settings
# validates them as VaultBackend and its _VaultClient do.
_AUTH = "for `auth_type`"
VAULT_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "connections_path",
        "paths",
        "connections",
        "path (or list of paths, tried in order) of connections under the mount; `null` disables",
    ),
    Setting(
        "variables_path",
        "paths",
        "variables",
        "path (or list of paths, tried in order) of variables under the mount; `null` disables",
    ),
    Setting(
        "config_path",
        "paths",
        "config",
        "path (or list of paths, tried in order) of config values under the mount; `null` disables",
    ),
    Setting(
        "use_team_secrets_path",
        "bool",
        True,
        "in a multi-team deployment, read a team's secrets at `<path>/<team>/<key>`",
    ),
    Setting(
        "global_secrets_path",
        "any",
        None,
        "(deprecated) a path appended as a last fallback to each of the three paths",
        shown_type="string",
    ),
    Setting("url", "string", None, "base URL of Vault (or OpenBao)"),
    Setting(
        "auth_type",
        "choice",
        "token",
        "how to log in to Vault (`cert` is this project's own)",
        choices=VAULT_AUTH_TYPES,
    ),
    Setting("auth_mount_point", "string", None, "the auth method's mount (default: the method's own)"),
    Setting("mount_point", "string", "secret", "the KV engine's mount; `null` takes it from the key's first segment"),
    Setting("kv_engine_version", "choice", 2, "KV engine version", choices=(1, 2)),
    Setting("token", "string", None, f"Vault token ({_AUTH} `token`, `github`; else `VAULT_TOKEN`)"),
    Setting("token_path", "string", None, f"file holding the token ({_AUTH} `token`, `github`)"),
    Setting("username", "string", None, f"{_AUTH} `userpass`, `ldap`"),
    Setting("password", "string", None, f"{_AUTH} `userpass`, `ldap`"),
    Setting("key_id", "string", None, f"{_AUTH} `aws_iam`, `azure`"),
    Setting("secret_id", "string", None, f"{_AUTH} `approle`, `aws_iam`, `azure`"),
    Setting("role_id", "string", None, f"{_AUTH} `approle`, `aws_iam`, `gcp`"),
    Setting("assume_role_kwargs", "object", None, f"STS AssumeRole arguments ({_AUTH} `aws_iam`)"),
    Setting("region", "string", None, f"AWS region of the STS calls ({_AUTH} `aws_iam`)"),
    Setting("kubernetes_role", "string", None, f"{_AUTH} `kubernetes`"),
    Setting(
        "kubernetes_jwt_path",
        "string",
        DEFAULT_KUBERNETES_JWT_PATH,
        f"the service account token ({_AUTH} `kubernetes`)",
    ),
    Setting("gcp_key_path", "string", None, f"service account key file ({_AUTH} `gcp`)"),
    Setting("gcp_keyfile_dict", "object", None, f"service account key ({_AUTH} `gcp`)"),
    Setting("gcp_scopes", "string", None, f"comma-separated OAuth2 scopes ({_AUTH} `gcp`)"),
    Setting("azure_tenant_id", "string", None, f"{_AUTH} `azure`"),
    Setting("azure_resource", "string", None, f"{_AUTH} `azure`"),
    Setting("radius_host", "string", None, f"{_AUTH} `radius`"),
    Setting("radius_secret", "string", None, f"{_AUTH} `radius`"),
    Setting("radius_port", "integer", None, f"{_AUTH} `radius`"),
    Setting("jwt_role", "string", None, f"{_AUTH} `jwt`"),
    Setting("jwt_token", "string", None, f"{_AUTH} `jwt`"),
    Setting("jwt_token_path", "string", None, f"file holding the JWT ({_AUTH} `jwt`)"),
    # ours: the role of the `cert` auth method to log in with (Vault tries every role when unset)
    Setting("cert_role", "string", None, f"the role to log in with ({_AUTH} `cert`; default: every role)"),
)
# Extra kwargs VaultBackend forwards to hvac.Client.
HVAC_CLIENT_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "verify",
        "any",
        None,
        "verify Vault's TLS certificate, or the path of a CA bundle",
        shown_type="boolean or path",
        shown_default="`true`",
    ),
    Setting(
        "cert",
        "any",
        None,
        "client certificate: a path, or `[certificate, key]` paths (required by `auth_type` `cert`)",
        shown_type="path or list of two paths",
    ),
    Setting("namespace", "any", None, "Vault Enterprise namespace", shown_type="string"),
    Setting("proxies", "any", None, "proxies for the HTTP client, as requests takes them", shown_type="JSON object"),
    Setting(
        "timeout",
        "any",
        None,
        "seconds per Vault request (within the resolution's `deadline`)",
        shown_type="positive number",
        shown_default="`5`",
    ),
)
VAULT_KWARGS: dict[str, Any] = defaults(VAULT_SETTINGS)
HVAC_CLIENT_KWARGS: tuple[str, ...] = tuple(s.name for s in HVAC_CLIENT_SETTINGS)

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


# -- plaintext Vault -------------------------------------------------------------------------------------

_plaintext_lock = threading.Lock()
_plaintext_warned = [False]  # one WARNING per process, however many backends Airflow builds


def plaintext_vault_host(settings: VaultSettings) -> str | None:
    """The host of an ``http://`` Vault URL that is not loopback, else None. Without ``url`` hvac reads
    ``VAULT_ADDR`` (its default, ``http://localhost:8200``, is loopback)."""
    url = settings.url or os.environ.get("VAULT_ADDR") or ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or is_loopback(host):
        return None
    return host or "(none)"


def warn_if_plaintext(settings: VaultSettings) -> None:
    """An ``http://`` Vault URL off loopback is accepted, as Airflow's VaultBackend does, with one WARNING per
    process: the Vault login and every secret read (client secrets, keys) cross the network in clear."""
    host = plaintext_vault_host(settings)
    if host is None:
        return
    with _plaintext_lock:
        if _plaintext_warned[0]:
            return
        _plaintext_warned[0] = True
    log.warning(
        "kong-secrets-backend: the Vault url is http:// on host %s, which is not loopback: the Vault login and every"
        " secret read cross the network in clear; use https",
        host,
    )
