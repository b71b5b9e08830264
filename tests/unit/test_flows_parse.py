from __future__ import annotations

import json

import pytest

from kong_secrets_backend.connection import load_kong_auth
from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows import build_flow, parse_credential
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS, backend_settings

BLOCK = {
    "token_url": "https://idp.example.com/oauth2/token",
    "client_id": "airflow-orders",
    "client_secret": "client-secret-123",
    "scope": "orders:read",
    "audience": "https://kong.example.com/orders",
}


def test_client_credentials_defaults() -> None:
    cred = parse_credential(BLOCK, settings=SETTINGS, version=None)
    assert cred.flow == "client_credentials"
    assert cred.client_auth_method == "client_secret_basic"
    assert cred.header_name == "Authorization"
    assert "client-secret-123" not in repr(cred)


def test_kong_auth_may_be_a_json_string() -> None:
    assert load_kong_auth(json.dumps(BLOCK)) == BLOCK


def test_scope_list_is_joined() -> None:
    cred = parse_credential({**BLOCK, "scope": ["a", "b"]}, settings=SETTINGS, version=None)
    assert cred.scope == "a b"


def test_cache_key_changes_with_version_scope_and_audience_but_not_with_the_secret() -> None:
    """Shared cache names are non-secret identity; tokens of two secrets stay apart in the process (token_key)."""
    base = parse_credential(BLOCK, settings=SETTINGS, version="1").cache_key()
    assert base == parse_credential(BLOCK, settings=SETTINGS, version="1").cache_key()
    other_secret = parse_credential({**BLOCK, "client_secret": "other-secret"}, settings=SETTINGS, version="1")
    variants = [
        parse_credential(BLOCK, settings=SETTINGS, version="2"),
        parse_credential({**BLOCK, "scope": "orders:write"}, settings=SETTINGS, version="1"),
        parse_credential({**BLOCK, "audience": "https://other"}, settings=SETTINGS, version="1"),
    ]
    assert len({base, *(v.cache_key() for v in variants)}) == 4
    assert other_secret.cache_key() == base
    assert "client-secret-123" not in base

    def token_key(cred: object) -> str:
        return str(build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE).token_key())  # type: ignore[arg-type, attr-defined]

    first = parse_credential(BLOCK, settings=SETTINGS, version="1")
    assert token_key(first) != token_key(other_secret)
    assert token_key(first) == token_key(parse_credential(BLOCK, settings=SETTINGS, version="1"))
    assert "client-secret-123" not in token_key(first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"flow": "magic"}, "kong_auth.flow 'magic' is unknown"),
        ({"client_sercet": "typo"}, "unknown fields: client_sercet"),
        ({"client_id": None}, "kong_auth.client_id is missing"),
        ({"client_secret": 5}, "kong_auth.client_secret must be a string"),
        ({"client_auth_method": "tls_client_auth"}, "client_auth_method 'tls_client_auth' is not supported"),
        ({"token_url": "http://idp.example.com/token"}, "uses http:// on a non-loopback host"),
        ({"token_url": "https://user:pw@idp.example.com/token"}, "must not carry user:password@"),
        ({"token_url": "ftp://idp.example.com/token"}, "must be an absolute https:// URL"),
        ({"token_params": {"grant_type": "password"}}, "must not set grant_type"),
        ({"token_params": ["x"]}, "token_params must be an object"),
        ({"header_name": "Bad Header"}, "not a valid HTTP header name"),
        ({"scope": 5}, "scope must be a string or a list"),
    ],
)
def test_bad_blocks_are_refused_by_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(SecretFormatError, match=message) as info:
        parse_credential({**BLOCK, **change}, settings=SETTINGS, version=None)
    assert "client-secret-123" not in str(info.value)


def test_http_is_allowed_on_loopback_or_when_configured() -> None:
    parse_credential({**BLOCK, "token_url": "http://127.0.0.1:9000/token"}, settings=SETTINGS, version=None)
    parse_credential({**BLOCK, "token_url": "http://localhost/token"}, settings=SETTINGS, version=None)
    parse_credential({**BLOCK, "token_url": "http://[::1]:9000/token"}, settings=SETTINGS, version=None)
    parse_credential(
        {**BLOCK, "token_url": "http://idp.internal/token"},
        settings=backend_settings(allow_insecure_http=True),
        version=None,
    )


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", 42, None])
def test_kong_auth_that_is_not_an_object_is_refused(raw: object) -> None:
    with pytest.raises(SecretFormatError, match="kong_auth"):
        load_kong_auth(raw)
