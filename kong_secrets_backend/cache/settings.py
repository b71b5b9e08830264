"""The ``token_cache`` and ``token_cache_dir`` backend kwargs, validated without I/O; errors name the kwarg.

A Redis URL may carry a password: no message here ever quotes the URL.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any
from urllib.parse import urlsplit

from kong_secrets_backend.errors import ConfigError

MODES = ("memory", "file")
REDIS_SCHEMES = ("redis", "rediss")
_USAGE = "use 'memory', 'file' or a redis:// / rediss:// URL"


def parse_token_cache(mode: Any, directory: Any) -> tuple[str, str | None]:
    """(token_cache, token_cache_dir), checked."""
    if not isinstance(mode, str) or not mode:
        kind = type(mode).__name__ if not isinstance(mode, str) else "an empty string"
        raise ConfigError(f"token_cache must be a string, not {kind} ({_USAGE})")
    if mode not in MODES:
        if "://" not in mode:
            if len(mode) <= 40 and "@" not in mode and ":" not in mode:
                raise ConfigError(f"token_cache {mode!r} is not supported ({_USAGE})")
            raise ConfigError(
                f"token_cache is not supported ({_USAGE}; the value is not shown: it may hold a password)"
            )
        _check_redis_url(mode)
    if directory is None:
        return mode, None
    if mode != "file":
        raise ConfigError("token_cache_dir is only used with token_cache 'file'")
    if not isinstance(directory, str) or not directory.strip():
        raise ConfigError("token_cache_dir must be a non-empty string (a directory path)")
    expanded = os.path.expanduser(directory)
    if not os.path.isabs(expanded):
        raise ConfigError(
            "token_cache_dir must be an absolute path (Airflow's processes do not share a working directory)"
        )
    return mode, os.path.normpath(expanded)


def _check_redis_url(url: str) -> None:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in REDIS_SCHEMES:
        shown = f" {scheme!r}" if len(scheme) <= 20 and scheme.isascii() and scheme.isalnum() else ""
        raise ConfigError(f"token_cache URL scheme{shown} is not supported ({_USAGE})")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("token_cache Redis URL is malformed (bad host or port)") from None
    if not parts.hostname:
        raise ConfigError("token_cache Redis URL has no host")
    if port == 0:
        raise ConfigError("token_cache Redis URL has port 0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError("token_cache Redis URL path must be a database number, like redis://host:6379/0")
    if parts.fragment:
        raise ConfigError("token_cache Redis URL must not have a #fragment")
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            "token_cache is a Redis URL but redis-py is not installed: pip install 'kong-secrets-backend[redis]'"
        )


__all__ = ["MODES", "parse_token_cache"]
