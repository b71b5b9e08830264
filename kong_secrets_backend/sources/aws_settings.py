"""AWS Secrets Manager source settings: the keyword arguments of Airflow's SecretsManagerBackend, parsed once.

Names, defaults and meanings are those of
``airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend``: its own arguments, plus
the AWS connection extras it hands to boto3 (``region_name``, ``profile_name``, ``endpoint_url``,
``role_arn`` ...). No boto3 import here: settings are parsed without I/O and without the AWS SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings_schema import Setting, defaults

ASSUME_ROLE_METHODS = ("assume_role",)

# SecretsManagerBackend's own arguments (same names, same defaults), declared once; parse_aws_settings
# validates them as SecretsManagerBackend does.
_DISABLES = '`null` disables the kind, `""` means no prefix'
_PATTERN = "only ids matching this regular expression (case-insensitive `re.match`) are looked up"
AWS_BACKEND_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "connections_prefix",
        "any",
        "airflow/connections",
        f"secret name prefix of connections; {_DISABLES}",
        shown_type="string or null",
    ),
    Setting("connections_lookup_pattern", "any", None, _PATTERN, shown_type="regular expression"),
    Setting(
        "variables_prefix",
        "any",
        "airflow/variables",
        f"secret name prefix of variables; {_DISABLES}",
        shown_type="string or null",
    ),
    Setting("variables_lookup_pattern", "any", None, _PATTERN, shown_type="regular expression"),
    Setting(
        "config_prefix",
        "any",
        "airflow/config",
        f"secret name prefix of config values; {_DISABLES}",
        shown_type="string or null",
    ),
    Setting("config_lookup_pattern", "any", None, _PATTERN, shown_type="regular expression"),
    Setting("sep", "any", "/", "joins prefix and id", shown_type="non-empty string"),
    Setting(
        "extra_conn_words",
        "any",
        None,
        'more key names per connection part in JSON secrets, e.g. `{"user": ["usr"], "host": ["endpoint"]}`',
        shown_type="JSON object of lists",
    ),
)
# The AWS connection extras SecretsManagerBackend passes on to boto3 (AwsConnectionWrapper), and the two
# client arguments it pops (api_version, use_ssl). None means boto3's own default.
_KEYS = "explicit AWS keys (default: the standard boto3 credential chain)"
AWS_CLIENT_SETTINGS: tuple[Setting, ...] = (
    Setting("region_name", "string", None, "AWS region", shown_default="boto3's"),
    Setting("profile_name", "string", None, "profile of the shared AWS config files", shown_default="boto3's"),
    Setting("endpoint_url", "string", None, "Secrets Manager endpoint (never used for STS)", shown_default="boto3's"),
    Setting(
        "verify",
        "any",
        None,
        "verify TLS certificates, or the path of a CA bundle",
        shown_type="boolean or path",
        shown_default="boto3's",
    ),
    Setting("aws_access_key_id", "string", None, _KEYS),
    Setting("aws_secret_access_key", "string", None, f"{_KEYS}; given with `aws_access_key_id`"),
    Setting("aws_session_token", "string", None, _KEYS),
    Setting("role_arn", "string", None, "assume this role through STS (refreshed by botocore before expiry)"),
    Setting(
        "assume_role_method",
        "choice",
        None,
        "how to assume `role_arn`",
        choices=ASSUME_ROLE_METHODS,
        shown_default='`"assume_role"`',
    ),
    Setting("assume_role_kwargs", "object", None, "more STS AssumeRole arguments"),
    Setting("config_kwargs", "object", None, "botocore `Config` arguments (for both clients)"),
    Setting(
        "service_config",
        "object",
        None,
        "per-service settings; `sts.endpoint_url` is the STS endpoint, as with the official backend",
    ),
    Setting("api_version", "string", None, "Secrets Manager API version", shown_default="boto3's"),
    Setting("use_ssl", "bool", None, "use TLS", shown_default="boto3's"),
)
AWS_SETTINGS: tuple[Setting, ...] = (*AWS_BACKEND_SETTINGS, *AWS_CLIENT_SETTINGS)
AWS_BACKEND_KWARGS: dict[str, Any] = defaults(AWS_BACKEND_SETTINGS)
AWS_CLIENT_KWARGS: tuple[str, ...] = tuple(s.name for s in AWS_CLIENT_SETTINGS)
AWS_KWARGS: tuple[str, ...] = (*AWS_BACKEND_KWARGS, *AWS_CLIENT_KWARGS)

# The connection parts SecretsManagerBackend recognises in a JSON secret, and the words it looks for.
CONN_FIELD_WORDS: dict[str, tuple[str, ...]] = {
    "login": ("login", "user", "username", "user_name"),
    "password": ("password", "pass", "key"),
    "host": ("host", "remote_host", "server"),
    "port": ("port",),
    "schema": ("database", "schema"),
    "conn_type": ("conn_type", "conn_id", "connection_type", "engine"),
    "extra": ("extra",),
}


@dataclass(frozen=True)
class AwsSettings:
    connections_prefix: str | None
    variables_prefix: str | None
    config_prefix: str | None
    connections_lookup_pattern: str | None
    variables_lookup_pattern: str | None
    config_lookup_pattern: str | None
    sep: str
    conn_field_words: Mapping[str, tuple[str, ...]]
    region_name: str | None = None
    profile_name: str | None = None
    endpoint_url: str | None = None
    verify: bool | str | None = None
    role_arn: str | None = None
    assume_role_kwargs: Mapping[str, Any] = field(default_factory=dict)
    sts_endpoint_url: str | None = None
    config_kwargs: Mapping[str, Any] = field(default_factory=dict)
    api_version: str | None = None
    use_ssl: bool | None = None
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)  # explicit keys, if any

    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.credentials.items() if k != "aws_access_key_id" and v)


def parse_aws_settings(kwargs: Mapping[str, Any]) -> AwsSettings:
    values = {**AWS_BACKEND_KWARGS, **{k: v for k, v in kwargs.items() if k in AWS_BACKEND_KWARGS}}
    sep = values["sep"]
    if not isinstance(sep, str) or not sep:
        raise ConfigError("sep must be a non-empty string")
    prefixes = {
        name: _prefix(name, values[name], sep) for name in ("connections_prefix", "variables_prefix", "config_prefix")
    }
    patterns = {
        name: _pattern(name, values[name])
        for name in ("connections_lookup_pattern", "variables_lookup_pattern", "config_lookup_pattern")
    }
    client = {k: kwargs[k] for k in AWS_CLIENT_KWARGS if k in kwargs}
    for name in (
        "region_name",
        "profile_name",
        "endpoint_url",
        "role_arn",
        "api_version",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ):
        if client.get(name) is not None and not isinstance(client[name], str):
            raise ConfigError(f"{name} must be a string")
    for name in ("assume_role_kwargs", "config_kwargs", "service_config"):
        if client.get(name) is not None and not isinstance(client[name], Mapping):
            raise ConfigError(f"{name} must be a JSON object")
    verify = client.get("verify")
    if verify is not None and not isinstance(verify, (bool, str)):
        raise ConfigError("verify must be true, false or the path of a CA bundle")
    use_ssl = client.get("use_ssl")
    if use_ssl is not None and not isinstance(use_ssl, bool):
        raise ConfigError("use_ssl must be true or false")
    method = client.get("assume_role_method") or "assume_role"
    if client.get("role_arn") and method not in ASSUME_ROLE_METHODS:
        raise ConfigError(
            f"assume_role_method {method!r} is not supported (supported: {', '.join(ASSUME_ROLE_METHODS)})"
        )
    keys = {k: client[k] for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token") if client.get(k)}
    if ("aws_access_key_id" in keys) != ("aws_secret_access_key" in keys):
        raise ConfigError("aws_access_key_id and aws_secret_access_key must be given together")
    sts = (client.get("service_config") or {}).get("sts") or {}
    if not isinstance(sts, Mapping):
        raise ConfigError("service_config.sts must be a JSON object")
    return AwsSettings(
        connections_prefix=prefixes["connections_prefix"],
        variables_prefix=prefixes["variables_prefix"],
        config_prefix=prefixes["config_prefix"],
        connections_lookup_pattern=patterns["connections_lookup_pattern"],
        variables_lookup_pattern=patterns["variables_lookup_pattern"],
        config_lookup_pattern=patterns["config_lookup_pattern"],
        sep=sep,
        conn_field_words=_conn_field_words(values["extra_conn_words"]),
        region_name=client.get("region_name"),
        profile_name=client.get("profile_name"),
        endpoint_url=client.get("endpoint_url"),
        verify=verify,
        role_arn=client.get("role_arn") or None,
        assume_role_kwargs=dict(client.get("assume_role_kwargs") or {}),
        sts_endpoint_url=sts.get("endpoint_url"),
        config_kwargs=dict(client.get("config_kwargs") or {}),
        api_version=client.get("api_version"),
        use_ssl=use_ssl,
        credentials=keys,
    )


def _prefix(name: str, value: Any, sep: str) -> str | None:
    """None disables the kind; "" means no prefix; trailing separators are stripped (as the official backend)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string or null")
    return value.rstrip(sep) if value else value


def _pattern(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a regular expression string or null")
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{name} is not a valid regular expression: {exc}") from None
    return value


def _conn_field_words(extra: Any) -> dict[str, tuple[str, ...]]:
    words = dict(CONN_FIELD_WORDS)
    if extra is None:
        return words
    if not isinstance(extra, Mapping):
        raise ConfigError("extra_conn_words must be a JSON object of lists of words")
    for part, more in extra.items():
        target = "login" if part == "user" else part  # `user` is accepted for backwards compatibility
        if target not in words:
            raise ConfigError(f"extra_conn_words has an unknown connection part {part!r}")
        if not isinstance(more, list) or not all(isinstance(w, str) for w in more):
            raise ConfigError(f"extra_conn_words.{part} must be a list of strings")
        words[target] = (*words[target], *more)
    return words
