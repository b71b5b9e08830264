"""Typed access to a ``kong_auth`` block, shared by every flow: unknown fields refused, bad types named."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kong_secrets_backend.errors import SecretFormatError

DEFAULT_HEADER = "Authorization"
COMMON_FIELDS = frozenset({"flow", "header_name", "credentials_path"})
# Secret in every flow that accepts them: masked before a block is parsed, whatever its flow (a flow declares
# any other secret field of its own in its FlowKind; key_auth's key, say, where kong_jwt's key is public).
SECRET_FIELDS = ("client_secret", "secret", "private_key")
_HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
RESERVED_TOKEN_PARAMS = frozenset(
    {"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


class Fields:
    """One kong_auth block and the fields its flow accepts; every accessor names the field in its error."""

    def __init__(self, block: Mapping[str, Any], *, allowed: set[str] | frozenset[str], flow: str) -> None:
        unknown = sorted(set(block) - set(allowed) - COMMON_FIELDS)
        if unknown:
            raise SecretFormatError(f"kong_auth has unknown fields: {', '.join(unknown)} (flow {flow!r})")
        self.block = block
        self.flow = flow

    def has(self, name: str) -> bool:
        return self.block.get(name) is not None

    def optional(self, name: str) -> Any:
        return self.block.get(name)

    def optional_str(self, name: str) -> str | None:
        value = self.block.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SecretFormatError(f"kong_auth.{name} must be a string, not {type(value).__name__}")
        return value or None

    def required_str(self, name: str) -> str:
        value = self.optional_str(name)
        if value is None:
            raise SecretFormatError(f"kong_auth.{name} is missing (required by flow {self.flow!r})")
        return value

    def optional_bool(self, name: str, default: bool = False) -> bool:
        value = self.block.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SecretFormatError(f"kong_auth.{name} must be true or false, not {type(value).__name__}")
        return value

    def optional_seconds(
        self, name: str, *, default: float | None, minimum: float = 1, maximum: float, maximum_from: str = ""
    ) -> float | None:
        """A positive number of seconds (an int, a float, or a string of digits), within [minimum, maximum];
        ``maximum_from`` names the setting the maximum comes from, for the error."""
        value = self.block.get(name)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SecretFormatError(f"kong_auth.{name} must be a number of seconds")
        if not minimum <= value <= maximum:
            source = f" (the backend's {maximum_from})" if maximum_from else ""
            raise SecretFormatError(f"kong_auth.{name} must be between {minimum:g} and {maximum:g} seconds{source}")
        return float(value)

    def str_map(self, name: str) -> dict[str, str]:
        value = self.block.get(name) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SecretFormatError(f"kong_auth.{name} must be an object of string values")
        reserved = sorted(set(value) & RESERVED_TOKEN_PARAMS)
        if reserved:
            raise SecretFormatError(f"kong_auth.{name} must not set {', '.join(reserved)}")
        return dict(value)

    def json_object(self, name: str) -> dict[str, Any]:
        value = self.block.get(name) or {}
        if not isinstance(value, dict):
            raise SecretFormatError(f"kong_auth.{name} must be a JSON object")
        return dict(value)

    def header_name(self, default: str = DEFAULT_HEADER) -> str:
        name = self.optional_str("header_name") or default
        if not set(name) <= _HEADER_NAME_CHARS:
            raise SecretFormatError("kong_auth.header_name is not a valid HTTP header name")
        return name


def scope_value(value: Any) -> str | None:
    """A scope as one space-separated string: from a string (whitespace normalised) or a list of strings."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return " ".join(value) or None
    if isinstance(value, str):
        return " ".join(value.split()) or None
    raise SecretFormatError("kong_auth.scope must be a string or a list of strings")
