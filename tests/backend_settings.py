"""Backend settings for tests that call the flows directly: parsed from kwargs like the backend's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kong_secrets_backend.settings import Settings, parse_backend_kwargs

if TYPE_CHECKING:
    from kong_secrets_backend.sources import SecretSource

VAULT_KWARGS: dict[str, Any] = {"url": "http://127.0.0.1:9", "token": "t-value"}
AWS_KWARGS: dict[str, Any] = {"source": "aws", "region_name": "eu-central-1"}


def backend_settings(**kwargs: Any) -> Settings:
    """Settings for source vault (or aws, with ``source="aws"``) plus the given backend kwargs."""
    base = AWS_KWARGS if kwargs.get("source") == "aws" else VAULT_KWARGS
    return parse_backend_kwargs({**base, **kwargs})


SETTINGS = backend_settings()  # the defaults: allow_insecure_http false, default_token_ttl 300
NO_SOURCE = cast("SecretSource", object())  # build_flow's source, for flows that read nothing from it
