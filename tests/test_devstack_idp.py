"""The local OpenID Provider (devstack/idp) issues real, verifiable client_credentials JWTs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from devstack.idp import Idp, IdpClient, start_idp

ORDERS = "https://api.example.test/orders"
BILLING = "https://api.example.test/billing"

BASIC = IdpClient(
    client_id="svc-basic",
    client_secret="basic-secret",
    scope="orders:read orders:write",
    access_token_ttl=300,
)
POST = IdpClient(
    client_id="svc-post",
    client_secret="post-secret",
    scope="orders:read",
    access_token_ttl=5,
    token_endpoint_auth_method="client_secret_post",
)


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    workdir = tmp_path_factory.mktemp("idp")
    server = start_idp(workdir, [BASIC, POST], [ORDERS, BILLING], default_audience=ORDERS)
    try:
        yield server
    finally:
        server.stop()
        if server.proc.alive():  # not yet reaped, so the PID is still ours: never leave node behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.proc.pid, signal.SIGKILL)


def request_token(
    idp: Idp,
    client: IdpClient,
    *,
    secret: str | None = None,
    method: str | None = None,
    **form: str,
) -> requests.Response:
    data = {"grant_type": "client_credentials", **form}
    secret = client.client_secret if secret is None else secret
    auth: tuple[str, str] | None = None
    if (method or client.token_endpoint_auth_method) == "client_secret_basic":
        auth = (client.client_id, secret)
    else:
        data.update(client_id=client.client_id, client_secret=secret)
    return requests.post(idp.token_url, data=data, auth=auth, timeout=5)


def decode(idp: Idp, token: str, audience: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        idp.public_key_pem_path.read_bytes(),
        algorithms=["RS256"],
        audience=audience,
        issuer=idp.issuer,
        options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
    )
    return claims


def test_discovery_and_jwks(idp: Idp) -> None:
    meta = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == idp.issuer
    assert meta["token_endpoint"] == idp.token_url
    assert "client_credentials" in meta["grant_types_supported"]
    keys = requests.get(idp.jwks_url, timeout=5).json()["keys"]
    assert [k["kid"] for k in keys] == [idp.kid]
    assert "d" not in keys[0]


def test_config_file_is_private(idp: Idp) -> None:
    config = idp.public_key_pem_path.parent / "idp-config.json"
    assert config.stat().st_mode & 0o777 == 0o600


def test_client_secret_basic_with_audience(idp: Idp) -> None:
    resp = request_token(idp, BASIC, audience=BILLING, scope="orders:read")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == BASIC.access_token_ttl
    assert body["scope"] == "orders:read"
    assert jwt.get_unverified_header(body["access_token"])["kid"] == idp.kid
    claims = decode(idp, body["access_token"], BILLING)
    assert claims["aud"] == BILLING
    assert claims["sub"] == claims["client_id"] == BASIC.client_id
    assert claims["scope"] == "orders:read"
    assert claims["exp"] - claims["iat"] == BASIC.access_token_ttl


def test_client_secret_post_with_resource_and_short_ttl(idp: Idp) -> None:
    resp = request_token(idp, POST, resource=ORDERS, scope="orders:read")
    assert resp.status_code == 200, resp.text
    claims = decode(idp, resp.json()["access_token"], ORDERS)
    assert claims["aud"] == ORDERS
    assert claims["client_id"] == POST.client_id
    assert claims["scope"] == "orders:read"
    assert claims["exp"] - claims["iat"] == POST.access_token_ttl == 5


def test_default_audience_and_all_allowed_scopes(idp: Idp) -> None:
    resp = request_token(idp, BASIC)
    assert resp.status_code == 200, resp.text
    claims = decode(idp, resp.json()["access_token"], ORDERS)
    assert claims["aud"] == ORDERS
    assert set(claims["scope"].split()) == {"orders:read", "orders:write"}


def test_wrong_secret_is_invalid_client(idp: Idp) -> None:
    for method in ("client_secret_basic", "client_secret_post"):
        resp = request_token(idp, BASIC, secret="nope", method=method)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"] == "invalid_client"


def test_unregistered_auth_method_is_invalid_client(idp: Idp) -> None:
    resp = request_token(idp, BASIC, method="client_secret_post")
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_client"


def test_unknown_client_is_invalid_client(idp: Idp) -> None:
    resp = request_token(idp, IdpClient("nobody", "x"))
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_client"


@pytest.mark.parametrize("field", ["audience", "resource"])
def test_unknown_audience_is_invalid_target(idp: Idp, field: str) -> None:
    resp = request_token(idp, BASIC, **{field: "https://api.example.test/unknown"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_target"


def test_conflicting_audience_and_resource_is_invalid_target(idp: Idp) -> None:
    resp = request_token(idp, BASIC, audience=ORDERS, resource=BILLING)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_target"


@pytest.mark.parametrize("scope", ["orders:write", "orders:read admin", "admin"])
def test_scope_outside_allowed_is_invalid_scope(idp: Idp, scope: str) -> None:
    resp = request_token(idp, POST, scope=scope)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_scope"


def test_counters_count_every_token_request_and_reset(idp: Idp) -> None:
    idp.reset_counts()
    assert idp.token_requests() == 0
    assert request_token(idp, BASIC).status_code == 200
    assert request_token(idp, BASIC, secret="wrong").status_code == 401
    assert request_token(idp, POST, scope="admin").status_code == 400
    assert idp.token_requests() == 3
    assert idp.token_requests(BASIC.client_id) == 2
    assert idp.token_requests(POST.client_id) == 1
    assert idp.token_requests("someone-else") == 0
    requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5)
    assert idp.token_requests() == 3
    idp.reset_counts()
    assert idp.token_requests() == 0
    assert idp.token_requests(BASIC.client_id) == 0


def test_put_client_rotates_secret(idp: Idp) -> None:
    client = IdpClient("svc-rotate", "secret-v1", scope="orders:read", access_token_ttl=60)
    idp.put_client(client)
    assert request_token(idp, client).status_code == 200

    rotated = IdpClient("svc-rotate", "secret-v2", scope="orders:read orders:write", access_token_ttl=120)
    idp.put_client(rotated)
    old = request_token(idp, client)
    assert old.status_code == 401, old.text
    assert old.json()["error"] == "invalid_client"

    new = request_token(idp, rotated, scope="orders:write")
    assert new.status_code == 200, new.text
    claims = decode(idp, new.json()["access_token"], ORDERS)
    assert claims["client_id"] == "svc-rotate"
    assert claims["scope"] == "orders:write"
    assert claims["exp"] - claims["iat"] == 120


def test_put_client_rejects_bad_metadata(idp: Idp) -> None:
    with pytest.raises(RuntimeError, match="400"):
        idp.put_client(IdpClient("svc-bad", "s", token_endpoint_auth_method="private_key_jwt"))


def test_short_ttl_token_expires(idp: Idp) -> None:
    resp = request_token(idp, POST)
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    claims = decode(idp, token, ORDERS)
    time.sleep(max(0.0, claims["exp"] - time.time()) + 1.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode(idp, token, ORDERS)


def test_logs_have_no_warnings(idp: Idp) -> None:
    log = idp.proc.log_text()
    assert "IDP READY" in log
    lowered = log.lower()
    for marker in ("warn", "deprecat", "server_error"):
        assert marker not in lowered, log


def test_workdir_has_public_pem(idp: Idp) -> None:
    pem = Path(idp.public_key_pem_path).read_text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
