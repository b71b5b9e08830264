"""How a backend setting is declared, validated and documented: one vocabulary for every kwarg.

A ``Setting`` is one declaration: name, kind (the type), default, bounds or choices, one line of doc.
``Setting.read`` validates a value by its kind with the readers below (no I/O; every error names the
keyword); ``reference_table`` renders declarations as the Markdown table of the configuration reference.
``settings.py`` declares the project's own kwargs with it; ``sources/vault_settings.py`` and
``sources/aws_settings.py`` declare the official backends' kwargs with it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from kong_secrets_backend.errors import ConfigError

Kind = Literal[
    "bool",  # true or false (or the strings "true" / "false")
    "number",  # int or float, within minimum..maximum
    "integer",  # an int
    "string",  # a string
    "choice",  # one of `choices`
    "paths",  # a path or a list of paths, null disables
    "object",  # a JSON object
    "token_cache",  # "memory", "file" or a redis:// / rediss:// URL
    "directory",  # an absolute directory path (~ expanded)
    "file",  # an absolute file path (~ expanded); whether it exists is checked at first use
    "any",  # documented only: the owning module checks it
]

_KIND_TEXT: dict[str, str] = {
    "bool": "boolean",
    "number": "number",
    "integer": "integer",
    "string": "string",
    "choice": "one of",
    "paths": "string or list of strings",
    "object": "JSON object",
    "token_cache": '`"memory"`, `"file"` or a `redis://` / `rediss://` URL',
    "directory": "absolute path",
    "file": "absolute path of a file",
    "any": "",
}


@dataclass(frozen=True)
class Setting:
    """One backend kwarg, declared once."""

    name: str
    kind: Kind
    default: Any
    doc: str  # one line, Markdown
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    shown_default: str | None = None  # the documented default when the value's default is computed later
    shown_type: str | None = None  # the documented type when the kind alone does not say it
    requires: tuple[str, Any] | None = None  # (other kwarg, value): this one applies only with that value

    def read(self, value: Any) -> Any:
        """The value, validated and normalised by kind; ConfigError naming the keyword otherwise."""
        return _READERS[self.kind](self, value)

    def type_text(self) -> str:
        if self.shown_type is not None:
            return self.shown_type
        if self.kind == "choice":
            return "one of " + ", ".join(f"`{_json(c)}`" for c in self.choices)
        text = _KIND_TEXT[self.kind]
        if self.kind == "number" and self.minimum is not None:
            bound = (
                f"{self.minimum:g} to {self.maximum:g}" if self.maximum is not None else f"at least {self.minimum:g}"
            )
            text = f"{text}, {bound}"
        return text

    def default_text(self) -> str:
        return self.shown_default if self.shown_default is not None else f"`{_json(self.default)}`"


def defaults(settings: Iterable[Setting]) -> dict[str, Any]:
    """name -> default."""
    return {s.name: s.default for s in settings}


def reference_table(settings: Iterable[Setting]) -> str:
    """The Markdown table documenting these settings (the configuration reference's generated part)."""
    rows = ["| kwarg | type | default | meaning |", "|---|---|---|---|"]
    for s in settings:
        doc = s.doc
        if s.requires is not None:
            doc = f"{doc}; only with `{s.requires[0]}` `{_json(s.requires[1])}`"
        rows.append(f"| `{s.name}` | {s.type_text()} | {s.default_text()} | {doc} |")
    return "\n".join(rows) + "\n"


def _json(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


# -- readers: one per kind; each error names the keyword and never quotes a value that may be secret --


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{name} must be true or false")


def as_number(name: str, value: Any, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise ConfigError(f"{name} must be {bound}")
    return float(value)


def as_integer(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} must be an integer")
    return value


def as_string(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    return value


def as_object(name: str, value: Any) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a JSON object")
    return value


def as_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is not supported (supported: {', '.join(map(repr, choices))})")
    return value


def as_paths(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{name} must be a string, a list of strings or null")
    return tuple(p.rstrip("/") for p in value)


def as_directory(name: str, value: Any) -> str | None:
    """An absolute directory path (``~`` expanded, normalised), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string (a directory path)")
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        raise ConfigError(f"{name} must be an absolute path (Airflow's processes do not share a working directory)")
    return os.path.normpath(expanded)


def as_file(name: str, value: Any) -> str | None:
    """An absolute file path (``~`` expanded, normalised), or None. Not opened here (no I/O in settings)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ConfigError(f"{name} must be a non-empty string (a file path)")
    expanded = os.path.expanduser(value.strip())
    if not os.path.isabs(expanded):
        raise ConfigError(f"{name} must be an absolute path (Airflow's processes do not share a working directory)")
    return os.path.normpath(expanded)


TOKEN_CACHE_MODES = ("memory", "file")
REDIS_SCHEMES = ("redis", "rediss")
_TOKEN_CACHE_USAGE = "use 'memory', 'file' or a redis:// / rediss:// URL"


def as_token_cache(name: str, value: Any) -> str:
    """ "memory", "file" or a Redis URL. A Redis URL may carry a password: no message here quotes the URL."""
    if not isinstance(value, str) or not value:
        kind = type(value).__name__ if not isinstance(value, str) else "an empty string"
        raise ConfigError(f"{name} must be a string, not {kind} ({_TOKEN_CACHE_USAGE})")
    if value not in TOKEN_CACHE_MODES:
        if "://" not in value:
            if len(value) <= 40 and "@" not in value and ":" not in value:
                raise ConfigError(f"{name} {value!r} is not supported ({_TOKEN_CACHE_USAGE})")
            raise ConfigError(
                f"{name} is not supported ({_TOKEN_CACHE_USAGE}; the value is not shown: it may hold a password)"
            )
        _check_redis_url(name, value)
    return value


def _check_redis_url(name: str, url: str) -> None:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in REDIS_SCHEMES:
        shown = f" {scheme!r}" if len(scheme) <= 20 and scheme.isascii() and scheme.isalnum() else ""
        raise ConfigError(f"{name} URL scheme{shown} is not supported ({_TOKEN_CACHE_USAGE})")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} Redis URL is malformed (bad host or port)") from None
    if not parts.hostname:
        raise ConfigError(f"{name} Redis URL has no host")
    if port == 0:
        raise ConfigError(f"{name} Redis URL has port 0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{name} Redis URL path must be a database number, like redis://host:6379/0")
    if parts.fragment:
        raise ConfigError(f"{name} Redis URL must not have a #fragment")
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            f"{name} is a Redis URL but redis-py is not installed: pip install 'kong-secrets-backend[redis]'"
        )


def _unchecked(setting: Setting, value: Any) -> Any:
    return value


_READERS: dict[str, Callable[[Setting, Any], Any]] = {
    "bool": lambda s, v: as_bool(s.name, v),
    "number": lambda s, v: as_number(
        s.name, v, minimum=s.minimum if s.minimum is not None else float("-inf"), maximum=s.maximum
    ),
    "integer": lambda s, v: as_integer(s.name, v),
    "string": lambda s, v: as_string(s.name, v),
    "choice": lambda s, v: as_choice(s.name, v, s.choices),
    "paths": lambda s, v: as_paths(s.name, v),
    "object": lambda s, v: as_object(s.name, v),
    "token_cache": lambda s, v: as_token_cache(s.name, v),
    "directory": lambda s, v: as_directory(s.name, v),
    "file": lambda s, v: as_file(s.name, v),
    "any": _unchecked,
}


__all__ = [
    "REDIS_SCHEMES",
    "TOKEN_CACHE_MODES",
    "Kind",
    "Setting",
    "as_bool",
    "as_choice",
    "as_directory",
    "as_file",
    "as_integer",
    "as_number",
    "as_object",
    "as_paths",
    "as_string",
    "as_token_cache",
    "defaults",
    "reference_table",
]
