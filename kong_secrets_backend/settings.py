"""Backend settings: each of the project's own kwargs declared once, parsed into one frozen ``Settings``.

Airflow hands ``backend_kwargs`` (a JSON object) to the backend's constructor. ``OWN_SETTINGS`` declares
this project's own kwargs (name, kind, default, bounds, one line of doc); the Vault and AWS kwargs, those
of Airflow's own backends, are declared beside their sources (``sources/vault_settings.py``,
``sources/aws_settings.py``). Everything is validated here, without I/O, so that a mistake is reported by
name before the first resolution; secret-bearing fields are excluded from ``repr``. The configuration
reference (docs/configuration.md) is rendered from the same declarations: ``reference_markdown()``, and
``python -m kong_secrets_backend.settings`` rewrites the generated parts of that file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kong_secrets_backend.errors import ConfigError, SecretIdError
from kong_secrets_backend.settings_schema import Setting, defaults, reference_table
from kong_secrets_backend.sources import SOURCES
from kong_secrets_backend.sources.aws_settings import AWS_KWARGS, AWS_SETTINGS, AwsSettings, parse_aws_settings
from kong_secrets_backend.sources.paths import validate_secret_id
from kong_secrets_backend.sources.vault_settings import (
    HVAC_CLIENT_KWARGS,
    HVAC_CLIENT_SETTINGS,
    VAULT_KWARGS,
    VAULT_SETTINGS,
    VaultSettings,
    parse_vault_settings,
)

# The project's own kwargs, in the order the reference lists them. Settings has one field of each name.
OWN_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "source",
        "choice",
        "vault",
        "where secrets are read: Vault (or OpenBao) or AWS Secrets Manager",
        choices=SOURCES,
    ),
    Setting(
        "token_cache",
        "token_cache",
        "memory",
        "how far a token is shared: one process (`memory`), the processes of one host (`file`, encrypted), or the"
        " fleet (Redis; needs the `redis` extra); see [token cache](token-cache.md)",
    ),
    Setting(
        "token_cache_dir",
        "directory",
        None,
        "the directory of the file cache (`~` is expanded)",
        shown_default="`$XDG_CACHE_HOME/kong-secrets-backend`, else `~/.cache/kong-secrets-backend`",
        requires=("token_cache", "file"),
    ),
    Setting(
        "allow_insecure_http",
        "bool",
        False,
        "allow `http://` token and discovery URLs and Kong gateways on hosts that are not loopback",
    ),
    Setting(
        "deadline",
        "number",
        10.0,
        "seconds one resolution may take in all, whatever the peers do (retries included)",
        minimum=0.1,
        maximum=600,
    ),
    Setting(
        "credentials_prefix",
        "string",
        None,
        "confine every `kong_auth.credentials_path` under this path, by whole segments (`kong/consumers` admits"
        " `kong/consumers/x`, not `kong/consumers-admin/x`); a path outside it is refused before it is read",
    ),
    Setting(
        "credential_cache_ttl",
        "number",
        60.0,
        "seconds a Kong connection secret (and a `credentials_path` secret) is kept before the source is read"
        " again; plain connections, variables and config are read every time",
        minimum=0,
        maximum=3600,
    ),
    Setting(
        "refresh_margin_min",
        "number",
        60.0,
        "a token is refreshed when less than max(`refresh_margin_min`, `refresh_margin_fraction` of its"
        " lifetime) seconds are left (at most half its lifetime)",
        minimum=0,
    ),
    Setting("refresh_margin_fraction", "number", 0.1, "see `refresh_margin_min`", minimum=0, maximum=0.5),
    Setting(
        "refresh_jitter",
        "number",
        0.5,
        "refresh up to this fraction of the margin earlier, at random, so hosts do not refresh in lockstep",
        minimum=0,
        maximum=1,
    ),
    Setting(
        "default_token_ttl",
        "number",
        300.0,
        "token lifetime (seconds) assumed when the IdP sends neither `expires_in` nor a JWT `exp`",
        minimum=1,
        maximum=86400,
    ),
    Setting(
        "max_token_ttl",
        "number",
        86400.0,
        "longest token lifetime (seconds) the backend uses: a longer `expires_in` or JWT `exp` is cut to it, and"
        " a kong_jwt `ttl` above it is refused",
        minimum=60,
        maximum=604800,
    ),
    Setting(
        "ca_bundle",
        "file",
        None,
        "a PEM file of CA certificates that verifies the token endpoint, OpenID discovery and JWKS; unset:"
        " `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`, then certifi (see [security](security.md#tls))",
        shown_default="none",
    ),
    Setting(
        "task_headers",
        "bool",
        True,
        "add `X-Airflow-Dag-Id` / `-Task-Id` / `-Run-Id` / `-Try-Number` to Kong connections",
    ),
    Setting(
        "traceparent", "bool", True, "add the W3C `traceparent` of the active OpenTelemetry span to Kong connections"
    ),
    Setting(
        "fast_masking",
        "bool",
        True,
        "match token-shaped values with one fixed pattern and a set lookup instead of one regex per secret in"
        " Airflow's masker (see [masking](masking.md))",
    ),
)
OWN_KWARGS: dict[str, Any] = defaults(OWN_SETTINGS)
_SOURCE = next(s for s in OWN_SETTINGS if s.name == "source")  # read first: it decides which kwargs apply


@dataclass(frozen=True)
class Settings:
    """Everything the backend needs, parsed from its kwargs: one field per entry of ``OWN_SETTINGS`` (whose
    declaration holds the type, default and doc), the source's own settings, and the fingerprint."""

    source: str
    token_cache: str = field(repr=False)  # may be a Redis URL holding a password
    token_cache_dir: str | None
    allow_insecure_http: bool
    deadline: float
    credentials_prefix: str | None
    credential_cache_ttl: float
    refresh_margin_min: float
    refresh_margin_fraction: float
    refresh_jitter: float
    default_token_ttl: float
    max_token_ttl: float
    ca_bundle: str | None
    task_headers: bool
    traceparent: bool
    fast_masking: bool
    vault: VaultSettings | None  # source "vault": VaultBackend's settings
    aws: AwsSettings | None  # source "aws": SecretsManagerBackend's settings
    fingerprint: str = field(default="", repr=False, compare=False)


def parse_backend_kwargs(kwargs: Mapping[str, Any]) -> Settings:
    """Validate backend kwargs and build the settings. Raises ConfigError naming the offending keyword."""
    source = _SOURCE.read(kwargs.get("source", _SOURCE.default))
    _check_kwarg_names(kwargs, source)
    values: dict[str, Any] = {}
    for setting in OWN_SETTINGS:
        value = kwargs.get(setting.name, setting.default)
        if setting.requires is not None and value is not None:
            other, wanted = setting.requires
            if values[other] != wanted:
                raise ConfigError(f"{setting.name} is only used with {other} {wanted!r}")
        values[setting.name] = setting.read(value)
    values["credentials_prefix"] = _path_prefix("credentials_prefix", values["credentials_prefix"])
    settings = Settings(
        **values,
        vault=parse_vault_settings(kwargs) if source == "vault" else None,
        aws=parse_aws_settings(kwargs) if source == "aws" else None,
    )
    return _with_fingerprint(settings, kwargs)


def _path_prefix(name: str, value: str | None) -> str | None:
    """A path prefix without its outer slashes; refused when empty or when it could leave its path."""
    if value is None:
        return None
    stripped = value.strip("/")
    try:
        validate_secret_id(stripped, kind=name)
    except SecretIdError as exc:
        raise ConfigError(str(exc)) from None
    return stripped


def _check_kwarg_names(kwargs: Mapping[str, Any], source: str) -> None:
    """Unknown kwargs, and kwargs of the other source, are refused by name."""
    source_kwargs = set(AWS_KWARGS) if source == "aws" else set(VAULT_KWARGS) | set(HVAC_CLIENT_KWARGS)
    other_kwargs = (set(VAULT_KWARGS) | set(HVAC_CLIENT_KWARGS) | set(AWS_KWARGS)) - source_kwargs
    unknown = sorted(set(kwargs) - set(OWN_KWARGS) - source_kwargs)
    if unknown:
        misplaced = [k for k in unknown if k in other_kwargs]
        if misplaced:
            raise ConfigError(f"backend kwargs {', '.join(misplaced)} do not apply to source {source!r}")
        raise ConfigError(f"unknown backend kwargs: {', '.join(unknown)}")


def _with_fingerprint(settings: Settings, kwargs: Mapping[str, Any]) -> Settings:
    """Settings fingerprint: equal kwargs share one process-wide runtime (Vault client, caches)."""
    canonical = json.dumps(dict(kwargs), sort_keys=True, default=repr)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    values = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name != "fingerprint"}
    return Settings(**values, fingerprint=digest)


# -- the configuration reference ----------------------------------------------------------------------

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def reference_parts() -> dict[str, str]:
    """The generated parts of docs/configuration.md, by marker name."""
    return {
        "own-kwargs": reference_table(OWN_SETTINGS),
        "vault-kwargs": reference_table((*VAULT_SETTINGS, *HVAC_CLIENT_SETTINGS)),
        "aws-kwargs": reference_table(AWS_SETTINGS),
    }


def _between_markers(body: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + body + match.group(2)

    return replace


def reference_markdown(text: str) -> str:
    """``text`` (the configuration reference) with every generated part rendered from the declarations.

    A part lives between ``<!-- generated:NAME:begin -->`` and ``<!-- generated:NAME:end -->``; a marker
    pair missing from ``text`` is an error, so that the reference cannot silently lose a table.
    """
    for name, body in reference_parts().items():
        pattern = re.compile(
            rf"(<!-- generated:{re.escape(name)}:begin -->\n).*?(<!-- generated:{re.escape(name)}:end -->)", re.S
        )
        text, count = pattern.subn(_between_markers(body), text)
        if count != 1:
            raise ValueError(f"the reference needs exactly one generated:{name} begin/end marker pair")
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated parts of docs/configuration.md (``--check``: exit 1 if they are stale)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[-1]) if args and not args[-1].startswith("-") else REFERENCE_PATH
    current = path.read_text(encoding="utf-8")
    rendered = reference_markdown(current)
    if "--check" in args:
        if rendered != current:
            print(f"{path} is out of date: run scripts/configuration-reference", file=sys.stderr)
            return 1
        return 0
    if rendered != current:
        path.write_text(rendered, encoding="utf-8")
        print(f"rewrote {path}")
    return 0


__all__ = ["OWN_KWARGS", "OWN_SETTINGS", "Settings", "parse_backend_kwargs", "reference_markdown"]

if __name__ == "__main__":
    raise SystemExit(main())
