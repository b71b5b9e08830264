"""Every way Kong authenticates, on the real stack: OpenBao -> backend -> HAProxy configured as each Kong plugin.

Per flow: the connection Airflow gets back passes its gateway route, and a wrong token is rejected there.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from airflow.sdk.definitions.connection import Connection

from devstack.stack import FLOW_ROUTES, KEY_AUTH_CONSUMER, KONG_JWT_KEYS, ORDERS_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import KongAuthError
from tests.conftest import assert_no_secrets
from tests.faulty_idp import faulty_idp

pytestmark = pytest.mark.usefixtures("fresh_process_state")


@pytest.fixture(scope="module", autouse=True)
def _small_secrets_masker() -> None:
    """Start this module with an empty Airflow secrets masker (and forget what we told it).

    Airflow's masker recompiles one regex of every registered secret on each registration, so after a few hundred
    tokens in one pytest process every mint costs 100+ ms. Clearing both sides keeps masking complete: every value
    is registered again the next time it is parsed or minted.
    """
    from airflow.sdk._shared.secrets_masker import reset_secrets_masker

    from kong_secrets_backend.airflow_bridge import masking

    reset_secrets_masker()
    masking._registered.clear()


# flow (as Stack.flow_auth names it) -> (gateway route, consumer the gateway should pass upstream)
FLOWS: dict[str, tuple[str, str]] = {
    "private_key_jwt": (FLOW_ROUTES["client_credentials"], "airflow-pkjwt"),
    "private_key_jwt_ec": (FLOW_ROUTES["client_credentials"], "airflow-pkjwt-ec"),
    "client_secret_jwt": (FLOW_ROUTES["client_credentials"], "airflow-csjwt"),
    "kong_jwt": (FLOW_ROUTES["kong_jwt"], f"{KONG_JWT_KEYS['HS256']}-consumer"),
    "kong_jwt_rs256": (FLOW_ROUTES["kong_jwt"], f"{KONG_JWT_KEYS['RS256']}-consumer"),
    "kong_jwt_es256": (FLOW_ROUTES["kong_jwt"], f"{KONG_JWT_KEYS['ES256']}-consumer"),
    "key_auth": (FLOW_ROUTES["key_auth"], KEY_AUTH_CONSUMER),
    "vault_identity": (FLOW_ROUTES["vault_identity"], "<entity>"),
}


def backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs(**extra))
    b._set_connection_class(Connection)
    return b


def resolve(stack: Stack, flow: str, **overrides: Any) -> Connection:
    cid = f"kong_{flow}_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.flow_connection(flow, **overrides))
    conn = backend(stack).get_connection(cid)
    assert conn is not None
    return conn


def call(stack: Stack, route: str, extra: dict[str, str]) -> requests.Response:
    """GET the route with the connection's extras as headers, as HttpHook sends them (allow_redirects is an option)."""
    headers = {k: v for k, v in extra.items() if k != "allow_redirects"}
    return requests.get(f"{stack.gateway.url}{route}", headers=headers, timeout=5)


def expected_consumer(stack: Stack, consumer: str) -> str:
    assert stack.vault_identity is not None
    return stack.vault_identity.entity_id if consumer == "<entity>" else consumer


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_each_flow_returns_a_header_its_gateway_route_accepts(stack: Stack, flow: str) -> None:
    route, consumer = FLOWS[flow]
    conn = resolve(stack, flow)
    extra = conn.extra_dejson
    header = "apikey" if flow == "key_auth" else "Authorization"
    # a header other than Authorization also brings allow_redirects: false (tests/attacks/test_redirects.py)
    assert set(extra) == {"Accept", header} | ({"allow_redirects"} if flow == "key_auth" else set())
    assert not conn.login and not conn.password and "kong_auth" not in str(extra)
    if flow == "key_auth":
        assert extra["apikey"] == stack.flow_secrets.api_key  # the raw key, by design
    else:
        assert extra["Authorization"].startswith("Bearer ey")
        assert_no_secrets(str(extra), stack.planted_secrets())
    resp = call(stack, route, extra)
    assert resp.status_code == 200, resp.text
    assert resp.json()["consumer"] == expected_consumer(stack, consumer)


# --- the gateway rejects wrong tokens, per flow -----------------------------------------------------------------


def test_kong_jwt_signed_with_a_wrong_secret_is_rejected_by_the_jwt_plugin(stack: Stack) -> None:
    conn = resolve(stack, "kong_jwt", secret="not-the-consumer-secret-0123456789")
    resp = call(stack, FLOW_ROUTES["kong_jwt"], conn.extra_dejson)
    assert (resp.status_code, resp.json()) == (401, {"message": "Invalid signature"})


def test_kong_jwt_with_an_unknown_key_or_the_wrong_algorithm_is_rejected(stack: Stack) -> None:
    unknown = resolve(stack, "kong_jwt", key="no-such-key")
    resp = call(stack, FLOW_ROUTES["kong_jwt"], unknown.extra_dejson)
    assert (resp.status_code, resp.json()) == (401, {"message": "No credentials found for given 'iss'"})
    wrong_alg = resolve(stack, "kong_jwt", key=KONG_JWT_KEYS["RS256"])  # an RS256 credential, signed HS256
    resp = call(stack, FLOW_ROUTES["kong_jwt"], wrong_alg.extra_dejson)
    assert (resp.status_code, resp.json()) == (403, {"message": "Invalid algorithm"})


def test_kong_jwt_ttl_is_kept_inside_the_plugins_maximum_expiration(stack: Stack) -> None:
    too_long = resolve(stack, "kong_jwt", ttl=3600)
    resp = call(stack, FLOW_ROUTES["kong_jwt"], too_long.extra_dejson)
    assert (resp.status_code, resp.json()) == (401, {"message": "exceeds maximum allowed expiration"})
    capped = resolve(stack, "kong_jwt", ttl=3600, maximum_expiration=900)
    assert call(stack, FLOW_ROUTES["kong_jwt"], capped.extra_dejson).status_code == 200


def test_key_auth_with_a_wrong_key_is_rejected(stack: Stack) -> None:
    conn = resolve(stack, "key_auth", key="kak-not-a-known-key")
    resp = call(stack, FLOW_ROUTES["key_auth"], conn.extra_dejson)
    assert (resp.status_code, resp.json()) == (401, {"message": "Invalid authentication credentials"})
    assert resp.headers["WWW-Authenticate"] == 'Key realm="kong"'


def test_vault_identity_token_is_rejected_when_tampered_or_sent_to_another_issuers_route(stack: Stack) -> None:
    token = resolve(stack, "vault_identity").extra_dejson["Authorization"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert call(stack, FLOW_ROUTES["vault_identity"], {"Authorization": tampered}).status_code == 401
    assert call(stack, FLOW_ROUTES["client_credentials"], {"Authorization": token}).status_code == 401
    idp_token = resolve(stack, "client_secret_jwt").extra_dejson["Authorization"]
    assert call(stack, FLOW_ROUTES["vault_identity"], {"Authorization": idp_token}).status_code == 401


# --- vault_identity: Vault's own token, checked against Vault's JWKS -------------------------------------------


def test_vault_identity_token_verifies_against_vaults_jwks(stack: Stack) -> None:
    setup = stack.vault_identity
    assert setup is not None
    token = resolve(stack, "vault_identity").extra_dejson["Authorization"].removeprefix("Bearer ")
    jwks = requests.get(f"{stack.bao.url}/v1/identity/oidc/.well-known/keys", timeout=5).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=setup.audience, issuer=setup.issuer)
    assert claims["sub"] == setup.entity_id
    assert claims["scope"] == ORDERS_SCOPE
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_vault_identity_for_a_role_the_policy_denies_is_one_clear_error(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = f"kong_vi_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.flow_connection("vault_identity", role="not-allowed"))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        backend(stack).get_connection(cid)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert cid in errors[0] and "identity/oidc/token/not-allowed" in errors[0] and "[vault_forbidden]" in errors[0]


# --- IdP refusals surfaced ------------------------------------------------------------------------------------


def test_private_key_jwt_with_an_unregistered_key_is_refused_with_invalid_client(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    other_key = stack.flow_secrets.private_keys["airflow-pkjwt-ec"]  # registered for another client
    cid = f"kong_pk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.flow_connection("private_key_jwt", private_key=other_key, kid=None))
    with caplog.at_level(logging.DEBUG), pytest.raises(KongAuthError):
        backend(stack).get_connection(cid)
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert cid in error and "HTTP 401: invalid_client" in error and "[idp_invalid_client]" in error
    assert_no_secrets(caplog.text, stack.planted_secrets())


def test_unauthorized_client_is_named_with_its_description_in_the_error_record(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = f"kong_uc_{uuid.uuid4().hex[:8]}"
    with faulty_idp() as url:
        stack.put(f"connections/{cid}", stack.kong_connection(token_url=f"{url}/unauthorized_client"))
        with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
            backend(stack).get_connection(cid)
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "unauthorized_client (unauthorized client for this client) [idp_unauthorized_client]" in error


# --- caching and secrecy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["kong_jwt", "vault_identity", "private_key_jwt"])
def test_a_minted_token_is_reused_by_later_resolutions(stack: Stack, flow: str) -> None:
    cid = f"kong_{flow}_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.flow_connection(flow))
    b = backend(stack)
    values = {b.get_connection(cid).extra_dejson["Authorization"] for _ in range(20)}
    assert len(values) == 1


def test_no_flow_leaks_a_secret_into_the_logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        tokens = [resolve(stack, flow).extra_dejson for flow in sorted(FLOWS) if flow != "key_auth"]
        with pytest.raises(KongAuthError):
            resolve(stack, "kong_jwt", ttl=-5)
    raw = [t["Authorization"].removeprefix("Bearer ") for t in tokens]
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), *raw])


def test_jwt_plugin_with_nbf_to_verify_accepts_tokens_that_carry_nbf(stack: Stack, tmp_path: Path) -> None:
    from devstack.gateway import KongJwtCredential, KongJwtRoute, start_gateway

    secret = stack.flow_secrets.kong_jwt["HS256"]
    route = KongJwtRoute(
        "/nbf-orders",
        (KongJwtCredential(KONG_JWT_KEYS["HS256"], "nbf-consumer", secret=secret),),
        claims_to_verify=("exp", "nbf"),
    )
    gateway = start_gateway(tmp_path / "gw", [route])
    try:
        with_nbf = resolve(stack, "kong_jwt", nbf=True).extra_dejson
        without = resolve(stack, "kong_jwt").extra_dejson
        ok = requests.get(f"{gateway.url}/nbf-orders", headers=with_nbf, timeout=5)
        refused = requests.get(f"{gateway.url}/nbf-orders", headers=without, timeout=5)
    finally:
        gateway.stop()
    assert ok.status_code == 200 and ok.json()["consumer"] == "nbf-consumer"
    assert (refused.status_code, refused.json()) == (401, {"message": "token not valid yet"})
