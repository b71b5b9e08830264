"""Vault auth types and the Vault token's life, against the real OpenBao of the stack (and a TLS one for cert auth).

Every auth type OpenBao can serve here is logged in with for real: token, token_path, approle, userpass,
jwt (OpenBao's jwt auth trusting the stack's oidc-provider through OIDC discovery; the login JWT is a
client_credentials token from it) and cert (a second OpenBao with a TLS listener and a throwaway CA).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.hashicorp.secrets.vault import VaultBackend
from airflow.sdk.definitions.connection import Connection

from devstack.openbao import OpenBao, start_openbao
from devstack.stack import ORDERS_AUDIENCE, READ_PREFIXES, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from kong_secrets_backend.errors import KongAuthError
from kong_secrets_backend.state import runtime_for
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

USERPASS_USER = "airflow-userpass"
JWT_ROLE = "airflow-jwt"
CERT_ROLE = "airflow-cert"


def _policy(bao: OpenBao) -> str:
    return bao.read_only_policy("secret", READ_PREFIXES)


@pytest.fixture(scope="module")
def auths(stack: Stack) -> dict[str, Any]:
    """userpass and jwt auth on the stack's OpenBao (jwt trusts the stack's IdP), a token and a token file."""
    bao = stack.bao
    password = f"userpass-{secrets.token_hex(12)}"
    bao.setup_userpass(USERPASS_USER, password, "airflow-read-userpass", _policy(bao))
    bao.setup_jwt(
        JWT_ROLE,
        "airflow-read-jwt",
        _policy(bao),
        bound_audiences=[ORDERS_AUDIENCE],
        bound_subject="airflow-orders",
        oidc_discovery_url=stack.idp.issuer,
    )
    token = bao.create_token(["airflow-read-userpass"], ttl="1h")
    LEAKS.plant(password, token)
    return {"password": password, "token": token}


def idp_jwt(stack: Stack) -> str:
    """A client_credentials access token (RS256 JWT, sub airflow-orders, aud the orders API) from the stack's IdP."""
    client = stack.clients["airflow-orders"]
    resp = requests.post(
        stack.idp.token_url,
        data={"grant_type": "client_credentials", "audience": ORDERS_AUDIENCE, "scope": "orders:read"},
        auth=(client.client_id, client.client_secret),
        timeout=5,
    )
    resp.raise_for_status()
    token = str(resp.json()["access_token"])
    LEAKS.plant(token)
    return token


def write_private(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def auth_kwargs(kind: str, stack: Stack, auths: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    url = stack.bao.url
    if kind == "token":
        return {"url": url, "auth_type": "token", "token": auths["token"]}
    if kind == "token_path":
        return {"url": url, "auth_type": "token", "token_path": write_private(tmp_path / "token", auths["token"])}
    if kind == "approle":
        return stack.backend_kwargs()
    if kind == "userpass":
        return {"url": url, "auth_type": "userpass", "username": USERPASS_USER, "password": auths["password"]}
    if kind == "jwt_token":
        return {"url": url, "auth_type": "jwt", "jwt_role": JWT_ROLE, "jwt_token": idp_jwt(stack)}
    if kind == "jwt_token_path":
        path = write_private(tmp_path / "jwt", idp_jwt(stack))
        return {"url": url, "auth_type": "jwt", "jwt_role": JWT_ROLE, "jwt_token_path": path}
    raise AssertionError(kind)


def conn_id() -> str:
    return f"src_{uuid.uuid4().hex[:10]}"


def ours(**kwargs: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(**kwargs)
    set_connection_class(backend, Connection)
    return backend


@pytest.mark.parametrize("kind", ["token", "token_path", "approle", "userpass", "jwt_token", "jwt_token_path"])
def test_each_auth_type_logs_in_reads_like_vault_backend_and_mints_a_gateway_token(
    kind: str, stack: Stack, auths: dict[str, Any], tmp_path: Path
) -> None:
    kwargs = auth_kwargs(kind, stack, auths, tmp_path)
    plain, kong = conn_id(), conn_id()
    stack.put(f"connections/{plain}", {"conn_type": "postgres", "host": "db", "login": "u", "password": "p@ss/w"})
    stack.put(f"connections/{kong}", stack.kong_connection())
    official = VaultBackend(**kwargs)
    assert ours(**kwargs).get_conn_value(plain) == official.get_conn_value(plain) is not None
    conn = ours(**kwargs).get_connection(kong)
    assert conn is not None
    resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
    assert resp.status_code == 200, resp.text


def test_wrong_password_is_one_clear_login_error_without_the_password(
    stack: Stack, auths: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    backend = ours(url=stack.bao.url, auth_type="userpass", username=USERPASS_USER, password=wrong)
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        backend.get_conn_value(conn_id())
    assert "Vault login with auth_type 'userpass' failed" in caplog.text
    assert_no_secrets(caplog.text, [wrong, auths["password"]])


# -- cert auth: a second OpenBao with a TLS listener ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    bao = start_openbao(tmp_path_factory.mktemp("openbao-tls"), tls=True)
    try:
        assert bao.tls is not None
        bao.setup_cert(CERT_ROLE, "airflow-read", _policy(bao), ca_pem=bao.tls.ca.pem().decode())
        bao.put_secret("secret", "connections/tls_conn", {"conn_type": "http", "host": "tls.example.com"})
        LEAKS.plant(bao.root_token)
        yield bao
    finally:
        bao.stop()


def test_cert_auth_logs_in_with_the_client_certificate_over_verified_tls(tls_bao: OpenBao) -> None:
    assert tls_bao.tls is not None
    kwargs = {
        "url": tls_bao.tls.url,
        "auth_type": "cert",
        "cert": list(tls_bao.tls.client.pair()),
        "verify": tls_bao.tls.ca_path,
        "cert_role": CERT_ROLE,
    }
    backend = ours(**kwargs)
    assert backend.get_conn_value("tls_conn") == '{"conn_type": "http", "host": "tls.example.com"}'
    source = runtime_for(backend._config).source  # type: ignore[arg-type]
    lookup = tls_bao.client().auth.token.lookup(source._client.token)  # type: ignore[attr-defined]
    assert lookup["data"]["meta"]["cert_name"] == CERT_ROLE


def test_tls_verification_is_on_by_default(tls_bao: OpenBao, caplog: pytest.LogCaptureFixture) -> None:
    assert tls_bao.tls is not None
    backend = ours(url=tls_bao.tls.url, auth_type="cert", cert=list(tls_bao.tls.client.pair()))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError) as info:
        backend.get_conn_value("tls_conn")
    assert info.value.reason == "vault_tls"
    assert "TLS with Vault at https://127.0.0.1" in caplog.text and "verify" in caplog.text


# -- the Vault token's life ---------------------------------------------------------------------------------


def short_lived_approle(stack: Stack, name: str, ttl: str, max_ttl: str) -> dict[str, Any]:
    role_id, secret_id = stack.bao.setup_approle(
        name, "airflow-read-short", _policy(stack.bao), token_ttl=ttl, token_max_ttl=max_ttl
    )
    LEAKS.plant(secret_id)
    return {"url": stack.bao.url, "auth_type": "approle", "role_id": role_id, "secret_id": secret_id}


def test_many_resolutions_and_reconstructions_leave_one_live_vault_token(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "h"})
    kwargs = stack.backend_kwargs(credential_cache_ttl=0)
    before = stack.bao.token_accessors()
    for _ in range(30):
        assert ours(**kwargs).get_conn_value(cid) is not None  # Airflow may build the backend again and again
    created = stack.bao.token_accessors() - before
    assert len(created) == 1
    source = runtime_for(ours(**kwargs)._config).source  # type: ignore[arg-type]
    # A 403 (here: the token revoked behind our back) logs in again once; still one live token.
    stack.bao.client().auth.token.revoke(source._client.token)  # type: ignore[attr-defined]
    assert ours(**kwargs).get_conn_value(cid) is not None
    assert source.logins == 2  # type: ignore[attr-defined]
    assert len(stack.bao.token_accessors() - before) == 1


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_a_renewable_token_is_renewed_after_two_thirds_of_its_ttl_not_replaced(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "h"})
    kwargs = short_lived_approle(stack, "airflow-renew", ttl="4s", max_ttl="1m")
    backend = ours(**kwargs)
    before = stack.bao.token_accessors()
    start = time.monotonic()  # the token is issued after this: it lives until start + 4 s at the earliest
    assert backend.get_conn_value(cid) is not None
    issued = time.monotonic()  # ... and before this: it is due for renewal by issued + 2.67 s
    session = runtime_for(backend._config).source.session  # type: ignore[arg-type,attr-defined]
    token = session.client.token
    sleep_until(issued + 2.75)  # past two thirds of 4 s: renewed on this use
    assert backend.get_conn_value(cid) is not None
    sleep_until(start + 4.3)  # past the first lease: only the renewal keeps the token alive
    assert backend.get_conn_value(cid) is not None
    assert (session.logins, session.renewals) == (1, 1)
    assert session.client.token == token
    assert len(stack.bao.token_accessors() - before) == 1


def test_a_token_at_its_max_ttl_is_replaced_by_a_new_login_and_revoked(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "h"})
    kwargs = short_lived_approle(stack, "airflow-maxttl", ttl="3s", max_ttl="3s")
    backend = ours(**kwargs)
    before = stack.bao.token_accessors()
    assert backend.get_conn_value(cid) is not None
    issued = time.monotonic()
    session = runtime_for(backend._config).source.session  # type: ignore[arg-type,attr-defined]
    first = session.client.token
    sleep_until(issued + 2.05)  # due; a renewal adds at most 1 s (a third of the TTL) or fails: log in again
    assert backend.get_conn_value(cid) is not None
    assert session.logins == 2 and session.client.token != first
    created = stack.bao.token_accessors() - before
    assert len(created) == 1  # the first token was revoked (or had just expired), not left alive
