"""client_credentials against a token endpoint that misbehaves on purpose (tests/faulty_idp.py)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from kong_secrets_backend.errors import DeadlineExceeded, KongAuthError, TokenEndpointError
from kong_secrets_backend.flows import parse_credential
from kong_secrets_backend.flows.client_credentials import ClientCredentialsFlow
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import SETTINGS
from tests.faulty_idp import _Handler, faulty_idp

SECRET = "flow-client-secret-value"


@pytest.fixture(scope="module")
def idp_url() -> Iterator[str]:
    with faulty_idp() as url:
        yield url


def _flow(url: str, **extra: object) -> ClientCredentialsFlow:
    block = {"token_url": url, "client_id": "cid", "client_secret": SECRET, **extra}
    cred = parse_credential(block, settings=SETTINGS, version=None)
    return ClientCredentialsFlow(cred, http=HttpTransport(), settings=SETTINGS)  # type: ignore[arg-type]


def test_basic_auth_sends_the_secret_in_the_header_and_the_params_in_the_body(idp_url: str) -> None:
    token = _flow(
        f"{idp_url}/ok",
        scope="orders:read",
        audience="https://aud",
        resource="https://res",
        token_params={"organization": "org1"},
    ).mint(Deadline(5))
    assert token.value == "faulty-idp-token-value"
    assert 119 <= token.remaining() <= 120
    _, headers, body = _Handler.requests_seen[-1]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"cid:{SECRET}".encode()).decode()
    form = parse_qs(body)
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["orders:read"],
        "audience": ["https://aud"],
        "resource": ["https://res"],
        "organization": ["org1"],
    }


def test_post_auth_sends_the_secret_in_the_body(idp_url: str) -> None:
    _flow(f"{idp_url}/ok", client_auth_method="client_secret_post").mint(Deadline(5))
    _, headers, body = _Handler.requests_seen[-1]
    assert "Authorization" not in headers
    assert parse_qs(body)["client_secret"] == [SECRET]


def test_missing_expiry_falls_back_to_the_default(idp_url: str) -> None:
    token = _flow(f"{idp_url}/no_expiry").mint(Deadline(5))
    assert 299 <= token.remaining() <= 300


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("redirect", "302 redirect; redirects are not followed"),
        ("invalid_client", "HTTP 401: invalid_client \\(bad secret\\)"),
        ("html", "non-JSON body \\(text/html\\)"),
        ("no_access_token", "without an access_token"),
        ("mac", "token_type 'mac'"),
        ("negative_expiry", "expires_in=-5"),
        ("huge", "exceeds the 1048576-byte cap"),
        ("huge_chunked", "exceeds the 1048576-byte cap"),
        ("500", "HTTP 500"),
    ],
)
def test_bad_token_responses_give_clear_errors(idp_url: str, fault: str, message: str) -> None:
    with pytest.raises(TokenEndpointError, match=message) as info:
        _flow(f"{idp_url}/{fault}").mint(Deadline(5))
    assert SECRET not in str(info.value)


def test_oauth_error_code_is_kept(idp_url: str) -> None:
    with pytest.raises(TokenEndpointError) as info:
        _flow(f"{idp_url}/invalid_client").mint(Deadline(5))
    assert (info.value.status, info.value.oauth_error, info.value.reason) == (
        401,
        "invalid_client",
        "idp_invalid_client",
    )


@pytest.mark.parametrize("fault", ["slow", "drip"])
def test_a_slow_peer_cannot_outlast_the_deadline(idp_url: str, fault: str) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        _flow(f"{idp_url}/{fault}").mint(Deadline(1.0))
    assert time.monotonic() - started < 3


def test_unreachable_endpoint_is_a_clear_error() -> None:
    with pytest.raises(KongAuthError, match="unreachable"):
        _flow("http://127.0.0.1:9/token").mint(Deadline(2))
