"""The HAProxy gateway (devstack/gateway.py) checked for real: tokens are signed here, no IdP involved."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.gateway import Gateway, JwtRoute, render_config, start_gateway
from devstack.procs import http_ok

ISSUER = "https://idp.test/realms/airflow"
AUDIENCE = "api://orders"
SCOPE = "orders:read"
CLIENT_ID = "airflow-worker"
LIMIT = 3
LIMIT_WINDOW = 60


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def public_pem(idp_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idp") / "idp-public.pem"
    path.write_bytes(_pem_public(idp_key))
    return path


@pytest.fixture(scope="module")
def next_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def gateway(
    public_pem: Path, next_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    next_pem = tmp_path_factory.mktemp("idp-next") / "idp-next-public.pem"
    next_pem.write_bytes(_pem_public(next_key))
    routes = [
        JwtRoute("/orders", public_pem, ISSUER, AUDIENCE, SCOPE),
        JwtRoute("/limited", public_pem, ISSUER, AUDIENCE, SCOPE, rate_limit=LIMIT, rate_window=LIMIT_WINDOW),
        JwtRoute("/keyset", {"k1": public_pem, "k2": next_pem}, ISSUER, AUDIENCE, SCOPE),  # a JWKS, by kid
    ]
    gw = start_gateway(tmp_path_factory.mktemp("gateway"), routes)
    try:
        yield gw
    finally:
        gw.stop()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "service-account-airflow",
        "client_id": CLIENT_ID,
        "scope": f"openid {SCOPE} profile",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: rsa.RSAPrivateKey, body: dict[str, Any]) -> str:
    return jwt.encode(body, _pem_private(key), algorithm="RS256", headers={"kid": "k1"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    """A JWS built by hand (PyJWT refuses HS256 with a PEM as secret); secret None -> empty signature."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    sig = "" if secret is None else _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{sig}"


def get(gw: Gateway, path: str, token: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    return requests.get(gw.url + path, headers=all_headers, timeout=10)


def upstream_request(gw: Gateway, marker: str) -> dict[str, Any]:
    hits = [r for r in gw.received() if marker in str(r["query"])]
    assert len(hits) == 1, hits
    return hits[0]


def assert_unauthorized(resp: requests.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json() == {"message": "Unauthorized"}


# --- happy path ---------------------------------------------------------------------------------------------------


def test_valid_token_reaches_upstream_with_identity(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    marker = uuid.uuid4().hex
    resp = get(gateway, f"/orders/42?m={marker}", sign(idp_key, claims()))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["consumer"] == CLIENT_ID
    assert body["path"] == "/orders/42"
    assert body["scope"] == f"openid {SCOPE} profile"
    assert resp.headers["RateLimit-Limit"] == "100"
    assert int(resp.headers["RateLimit-Remaining"]) < 100

    seen = upstream_request(gateway, marker)
    assert seen["headers"]["x-consumer-username"] == CLIENT_ID
    assert seen["headers"]["x-authenticated-scope"] == f"openid {SCOPE} profile"
    assert seen["headers"]["authorization"].startswith("Bearer ")
    assert seen["path"] == "/orders/42"


def test_sub_is_the_consumer_without_client_id(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    resp = get(gateway, "/orders", sign(idp_key, claims(client_id=None, sub="svc-42")))
    assert resp.status_code == 200, resp.text
    assert resp.json()["consumer"] == "svc-42"


def test_audience_array_containing_audience_is_accepted(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    resp = get(gateway, "/orders", sign(idp_key, claims(aud=["account", AUDIENCE])))
    assert resp.status_code == 200, resp.text


def test_pagination_and_post_body_pass_through(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    token = sign(idp_key, claims())
    assert get(gateway, "/orders?page=1", token).json()["next_page"] == 2
    assert "next_page" not in get(gateway, "/orders?page=3", token).json()

    marker = uuid.uuid4().hex
    resp = requests.post(
        f"{gateway.url}/orders?m={marker}", json={"a": 1}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    seen = upstream_request(gateway, marker)
    assert seen["method"] == "POST"
    assert json.loads(seen["body"]) == {"a": 1}


# --- 401 / 403 ------------------------------------------------------------------------------------------------------


def test_no_token_is_401(gateway: Gateway) -> None:
    resp = get(gateway, "/orders")
    assert_unauthorized(resp)
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_other_auth_scheme_is_401(gateway: Gateway) -> None:
    assert_unauthorized(get(gateway, "/orders", headers={"Authorization": "Basic YWlyZmxvdzpzZWNyZXQ="}))


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", ""])
def test_malformed_token_is_401(gateway: Gateway, token: str) -> None:
    assert_unauthorized(get(gateway, "/orders", headers={"Authorization": f"Bearer {token}"}))


def test_signature_by_other_key_is_401(gateway: Gateway) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_unauthorized(get(gateway, "/orders", sign(other, claims())))


def test_tampered_payload_is_401(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    header, _, signature = sign(idp_key, claims()).split(".")
    forged = _b64(json.dumps(claims(client_id="admin")).encode())
    assert_unauthorized(get(gateway, "/orders", f"{header}.{forged}.{signature}"))


def test_hs256_signed_with_public_key_is_401(gateway: Gateway, public_pem: Path) -> None:
    token = handmade({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), public_pem.read_bytes())
    assert_unauthorized(get(gateway, "/orders", token))


@pytest.mark.parametrize("alg", ["none", "None", "RS256"])
def test_unsigned_token_is_401(gateway: Gateway, alg: str) -> None:
    assert_unauthorized(get(gateway, "/orders", handmade({"alg": alg, "typ": "JWT"}, claims(), None)))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": int(time.time()) - 5}, id="expired"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
        pytest.param({"aud": "api://billing"}, id="wrong-aud"),
        pytest.param({"aud": ["api://billing"]}, id="wrong-aud-array"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": "https://evil.test/realms/airflow"}, id="wrong-iss"),
        pytest.param({"iss": None}, id="no-iss"),
        pytest.param({"client_id": None, "sub": None}, id="no-identity"),
    ],
)
def test_invalid_claims_are_401(gateway: Gateway, idp_key: rsa.RSAPrivateKey, overrides: dict[str, Any]) -> None:
    resp = get(gateway, "/orders", sign(idp_key, claims(**overrides)))
    assert_unauthorized(resp)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


@pytest.mark.parametrize("scope", ["openid profile", "orders:readonly", "orders:read:all", None])
def test_insufficient_scope_is_403(gateway: Gateway, idp_key: rsa.RSAPrivateKey, scope: str | None) -> None:
    resp = get(gateway, "/orders", sign(idp_key, claims(scope=scope)))
    assert resp.status_code == 403, resp.text
    assert resp.json() == {"message": "Forbidden"}
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


def test_rejected_requests_never_reach_upstream(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    before = len(gateway.received())
    assert get(gateway, "/orders").status_code == 401
    assert get(gateway, "/orders", sign(idp_key, claims(aud="x"))).status_code == 401
    assert get(gateway, "/orders", sign(idp_key, claims(scope="openid"))).status_code == 403
    assert get(gateway, "/nowhere").status_code == 404
    assert len(gateway.received()) == before


# --- spoofing, routing, rate limiting ---------------------------------------------------------------------------------


def test_spoofed_identity_headers_are_replaced(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    marker = uuid.uuid4().hex
    spoof = {"X-Consumer-Username": "admin", "X-Authenticated-Scope": "admin:all", "X-Consumer-ID": "1"}
    resp = get(gateway, f"/orders?m={marker}", sign(idp_key, claims(scope=SCOPE)), headers=spoof)
    assert resp.status_code == 200, resp.text
    headers = upstream_request(gateway, marker)["headers"]
    assert headers["x-consumer-username"] == CLIENT_ID
    assert headers["x-authenticated-scope"] == SCOPE
    assert "x-consumer-id" not in headers


def test_unknown_path_is_404(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    resp = get(gateway, "/nowhere", sign(idp_key, claims()))
    assert resp.status_code == 404
    assert resp.json() == {"message": "no Route matched with those values"}


def test_rate_limit_per_consumer_is_429(gateway: Gateway, idp_key: rsa.RSAPrivateKey) -> None:
    client = f"rl-{uuid.uuid4().hex[:8]}"
    token = sign(idp_key, claims(client_id=client))
    remaining = []
    for _ in range(LIMIT):
        resp = get(gateway, "/limited", token)
        assert resp.status_code == 200, resp.text
        assert resp.headers["RateLimit-Limit"] == str(LIMIT)
        assert resp.headers["X-RateLimit-Limit-Minute"] == str(LIMIT)
        remaining.append(int(resp.headers["RateLimit-Remaining"]))
    assert remaining == [LIMIT - 1 - i for i in range(LIMIT)]

    resp = get(gateway, "/limited", token)
    assert resp.status_code == 429, resp.text
    assert resp.json() == {"message": "API rate limit exceeded"}
    assert int(resp.headers["Retry-After"]) == LIMIT_WINDOW

    # another consumer has its own budget, and the other route is unaffected for the limited one
    other = sign(idp_key, claims(client_id=f"{client}-other"))
    assert get(gateway, "/limited", other).status_code == 200
    assert get(gateway, "/orders", token).status_code == 200


# --- a key set (JWKS) selected by kid, as Kong's openid-connect does --------------------------------------------


@pytest.mark.parametrize(
    ("signer", "kid", "status"),
    [
        ("idp", "k1", 200),
        ("next", "k2", 200),  # a rotated-in key
        ("idp", "k2", 401),  # the kid names another key of the set
        ("next", "k1", 401),
        ("idp", "k9", 401),  # unknown kid
        ("idp", None, 401),  # no kid
    ],
)
def test_a_key_set_verifies_each_token_with_the_key_its_kid_names(
    gateway: Gateway, idp_key: rsa.RSAPrivateKey, next_key: rsa.RSAPrivateKey, signer: str, kid: str | None, status: int
) -> None:
    key = idp_key if signer == "idp" else next_key
    token = jwt.encode(claims(), _pem_private(key), algorithm="RS256", headers={"kid": kid} if kid else None)
    assert get(gateway, "/keyset", token).status_code == status


# --- config validation and process handling ---


@pytest.mark.parametrize(
    ("field", "value"),
    [("required_scope", "two words"), ("issuer", "it's"), ("path_prefix", "orders"), ("rate_limit", 0)],
)
def test_render_config_refuses_unsafe_values(public_pem: Path, tmp_path: Path, field: str, value: object) -> None:
    route = JwtRoute("/orders", public_pem, ISSUER, AUDIENCE, SCOPE)
    bad = JwtRoute(**{**route.__dict__, field: value})
    with pytest.raises(ValueError):
        render_config(1, 2, [bad], tmp_path)


def test_stop_ends_both_processes(public_pem: Path, tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, [JwtRoute("/x", public_pem, ISSUER, AUDIENCE, SCOPE)])
    try:
        assert http_ok(gw.url + "/")
    finally:
        gw.stop()
    assert not gw.proc.alive()
    assert not gw.upstream.alive()
    assert not http_ok(gw.url + "/", timeout=0.5)
