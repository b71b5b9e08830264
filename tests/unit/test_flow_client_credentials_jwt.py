"""client_credentials with client_secret_jwt / private_key_jwt, OpenID discovery, and IdP errors surfaced.

Against local servers: tests/faulty_idp.py as the token endpoint, and a discovery endpoint defined here that
misbehaves on purpose.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kong_secrets_backend.errors import DeadlineExceeded, KongAuthError, SecretFormatError, TokenEndpointError
from kong_secrets_backend.flows import discovery, parse_credential
from kong_secrets_backend.flows.client_credentials import ASSERTION_TYPE, ClientCredentialsFlow
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS
from tests.faulty_idp import _Handler, faulty_idp

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = "client-secret-jwt-shared-secret-value-0123456789-padded-to-64-bytes-for-hs512"


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def idp_url() -> Iterator[str]:
    with faulty_idp() as url:
        yield url


def flow(**block: Any) -> ClientCredentialsFlow:
    block.setdefault("client_id", "airflow-orders")
    cred = parse_credential(block, settings=SETTINGS, version=None)
    return ClientCredentialsFlow(cred, http=HttpTransport(), settings=SETTINGS)  # type: ignore[arg-type]


def last_form() -> tuple[dict[str, str], dict[str, list[str]]]:
    _, headers, body = _Handler.requests_seen[-1]
    return headers, parse_qs(body)


# --- client assertions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "alg"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256")], ids=["rsa", "ec"])
def test_private_key_jwt_sends_a_one_time_assertion_for_the_token_endpoint(idp_url: str, key: Any, alg: str) -> None:
    token_url = f"{idp_url}/ok"
    f = flow(token_url=token_url, private_key=_pem(key), kid="key-1", scope="orders:read", resource="https://api")
    assert f.mint(Deadline(5)).value == "faulty-idp-token-value"
    headers, form = last_form()
    assert "Authorization" not in headers
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == ["airflow-orders"]
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert (form["scope"], form["resource"]) == (["orders:read"], ["https://api"])
    assertion = form["client_assertion"][0]
    assert jwt.get_unverified_header(assertion) == {"alg": alg, "kid": "key-1", "typ": "JWT"}
    claims = jwt.decode(assertion, key.public_key(), algorithms=[alg], audience=token_url)
    assert claims["iss"] == claims["sub"] == "airflow-orders"
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 5

    f.mint(Deadline(5))
    second = jwt.decode(last_form()[1]["client_assertion"][0], key.public_key(), algorithms=[alg], audience=token_url)
    assert second["jti"] != claims["jti"]  # never replayed


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_client_secret_jwt_signs_the_assertion_with_the_client_secret(idp_url: str, alg: str) -> None:
    token_url = f"{idp_url}/ok"
    flow(token_url=token_url, client_secret=SECRET, client_auth_method="client_secret_jwt", alg=alg).mint(Deadline(5))
    headers, form = last_form()
    assert "Authorization" not in headers and "client_secret" not in form
    claims = jwt.decode(form["client_assertion"][0], SECRET, algorithms=[alg], audience=token_url)
    assert claims["sub"] == "airflow-orders"


def test_the_private_key_is_not_imported_again_per_mint(idp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    f = flow(token_url=f"{idp_url}/ok", private_key=_pem(RSA_KEY))

    def no_import(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the PEM was imported again")

    monkeypatch.setattr(serialization, "load_pem_private_key", no_import)
    for _ in range(3):
        f.mint(Deadline(5))


def test_audience_and_token_params_are_sent_with_jwt_auth(idp_url: str) -> None:
    flow(
        token_url=f"{idp_url}/ok",
        private_key=_pem(EC_KEY),
        audience="https://kong.example.com/orders",
        token_params={"organization": "org1"},
    ).mint(Deadline(5))
    form = last_form()[1]
    assert form["audience"] == ["https://kong.example.com/orders"] and form["organization"] == ["org1"]


# --- IdP errors surfaced ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["unauthorized_client", "invalid_scope"])
def test_oauth_errors_carry_the_idps_code_and_description(idp_url: str, code: str) -> None:
    with pytest.raises(TokenEndpointError) as info:
        flow(token_url=f"{idp_url}/{code}", private_key=_pem(RSA_KEY)).mint(Deadline(5))
    error = info.value
    assert (error.status, error.oauth_error, error.reason) == (400, code, f"idp_{code}")
    assert error.oauth_error_description == f"{code.replace('_', ' ')} for this client"
    assert f"HTTP 400: {code} ({code.replace('_', ' ')} for this client)" in str(error)


def test_a_redirect_is_not_followed_with_the_assertion(idp_url: str) -> None:
    before = len(_Handler.requests_seen)
    with pytest.raises(TokenEndpointError, match="redirect"):
        flow(token_url=f"{idp_url}/redirect", private_key=_pem(RSA_KEY)).mint(Deadline(5))
    assert len(_Handler.requests_seen) == before + 1  # the Location was not requested


# --- OpenID discovery -------------------------------------------------------------------------------------------


class _Discovery(BaseHTTPRequestHandler):
    """GET {base}/{case}/.well-known/openid-configuration answers according to case."""

    token_endpoint = ""
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        case = self.path.split("/")[1]
        type(self).hits[case] = type(self).hits.get(case, 0) + 1
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        doc = {"issuer": f"{base}/{case}", "token_endpoint": self.token_endpoint, "jwks_uri": f"{base}/jwks"}
        if case in ("good", "cached"):
            self._send(200, json.dumps(doc).encode())
        elif case == "mismatch":
            self._send(200, json.dumps({**doc, "issuer": "https://evil.example.com"}).encode())
        elif case == "insecure":
            self._send(200, json.dumps({**doc, "token_endpoint": "http://idp.example.com/token"}).encode())
        elif case == "no_endpoint":
            self._send(200, json.dumps({"issuer": doc["issuer"]}).encode())
        elif case == "html":
            self._send(200, b"<html>sign in</html>", "text/html")
        elif case == "redirect":
            self._send(302, b"", Location=f"{base}/good/.well-known/openid-configuration")
        elif case == "huge":
            self._send(200, b'{"issuer": "' + b"x" * (2 * 1024 * 1024) + b'"}')
        elif case == "slow":
            time.sleep(20)
            self._send(200, json.dumps(doc).encode())
        else:
            self._send(404, b'{"error": "not_found"}')


@pytest.fixture(scope="module")
def discovery_base(idp_url: str) -> Iterator[str]:
    _Discovery.token_endpoint = f"{idp_url}/ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        discovery.forget()


def test_issuer_discovery_finds_the_token_endpoint_and_is_cached(discovery_base: str, idp_url: str) -> None:
    discovery.forget()
    f = flow(issuer=f"{discovery_base}/cached", private_key=_pem(RSA_KEY))
    for _ in range(3):
        assert f.mint(Deadline(5)).value == "faulty-idp-token-value"
    assert _Discovery.hits["cached"] == 1
    assertion = last_form()[1]["client_assertion"][0]
    jwt.decode(assertion, RSA_KEY.public_key(), algorithms=["RS256"], audience=f"{idp_url}/ok")


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("mismatch", TokenEndpointError, "is for another issuer"),
        ("insecure", SecretFormatError, "issuer's token_endpoint uses http:// on a non-loopback host"),
        ("no_endpoint", TokenEndpointError, "has no token_endpoint"),
        ("html", TokenEndpointError, "did not answer a JSON object"),
        ("redirect", TokenEndpointError, "302 redirect; redirects are not followed"),
        ("missing", TokenEndpointError, "answered HTTP 404"),
        ("huge", TokenEndpointError, "OpenID discovery endpoint response of \\d+ bytes exceeds the 1048576-byte cap"),
    ],
)
def test_a_bad_discovery_document_is_a_clear_error(
    discovery_base: str, case: str, error: type[KongAuthError], message: str
) -> None:
    discovery.forget()
    hits_before = _Discovery.hits.get("good", 0)
    with pytest.raises(error, match=message):
        flow(issuer=f"{discovery_base}/{case}", private_key=_pem(RSA_KEY)).mint(Deadline(5))
    assert _Discovery.hits.get("good", 0) == hits_before  # a redirect is never followed


def test_a_slow_discovery_endpoint_cannot_outlast_the_deadline(discovery_base: str) -> None:
    discovery.forget()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        flow(issuer=f"{discovery_base}/slow", private_key=_pem(RSA_KEY)).mint(Deadline(1.0))
    assert time.monotonic() - started < 3


def test_without_expires_in_or_a_jwt_the_configured_default_ttl_applies(idp_url: str) -> None:
    from kong_secrets_backend.errors import ConfigError
    from kong_secrets_backend.flows import build_flow
    from kong_secrets_backend.settings import parse_backend_kwargs

    config = parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t-value", "default_token_ttl": 120})
    block = {"token_url": f"{idp_url}/no_expiry", "client_id": "c", "client_secret": "s-value"}
    cred = parse_credential(block, settings=config, version=None)
    token = build_flow(cred, http=HttpTransport(), settings=config, source=NO_SOURCE).mint(Deadline(5))
    assert 119 <= token.remaining() <= 120
    with pytest.raises(ConfigError, match="default_token_ttl must be between 1 and 86400"):
        parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t-value", "default_token_ttl": 0})
