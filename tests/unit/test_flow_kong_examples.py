"""examples/kong: one Kong declarative config per flow, saying what the test gateway enforces for that flow.

They were not run against Kong here; this checks their shape and that they agree with devstack/stack.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import (
    FLOW_ROUTES,
    KEY_AUTH_CONSUMER,
    KONG_JWT_KEYS,
    KONG_JWT_MAXIMUM_EXPIRATION,
    ORDERS_AUDIENCE,
    ORDERS_SCOPE,
    VAULT_ORDERS_AUDIENCE,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kong"
AUTH_PLUGIN = {
    "client_credentials": "openid-connect",
    "kong_jwt": "jwt",
    "key_auth": "key-auth",
    "vault_identity": "openid-connect",
}


def load(flow: str) -> dict[str, Any]:
    config = yaml.safe_load((EXAMPLES / f"{flow}.yaml").read_text())
    assert isinstance(config, dict)
    return config


def plugins(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (service,) = config["services"]
    return {p["name"]: p.get("config", {}) for p in service["plugins"]}


@pytest.mark.parametrize("flow", sorted(AUTH_PLUGIN))
def test_each_flow_has_a_service_route_auth_plugin_rate_limit_and_correlation_id(flow: str) -> None:
    config = load(flow)
    assert config["_format_version"] == "3.0"
    (service,) = config["services"]
    assert [r["paths"] for r in service["routes"]] == [[FLOW_ROUTES[flow]]]
    assert set(plugins(config)) == {AUTH_PLUGIN[flow], "rate-limiting", "correlation-id"}
    assert plugins(config)["rate-limiting"]["limit_by"] == "consumer"
    assert "Not run against Kong here" in (EXAMPLES / f"{flow}.yaml").read_text()


@pytest.mark.parametrize(
    ("flow", "audience", "consumer_claim"),
    [("client_credentials", ORDERS_AUDIENCE, "client_id"), ("vault_identity", VAULT_ORDERS_AUDIENCE, "sub")],
)
def test_openid_connect_checks_what_the_gateway_checks(flow: str, audience: str, consumer_claim: str) -> None:
    oidc = plugins(load(flow))["openid-connect"]
    assert oidc["auth_methods"] == ["bearer"]
    assert oidc["audience_required"] == [audience]
    assert oidc["scopes_required"] == [ORDERS_SCOPE]
    assert oidc["consumer_claim"] == [consumer_claim]


def test_jwt_plugin_matches_the_gateways_credentials_and_limits() -> None:
    config = load("kong_jwt")
    jwt_plugin = plugins(config)["jwt"]
    assert jwt_plugin["key_claim_name"] == "iss"
    assert jwt_plugin["claims_to_verify"] == ["exp"]
    assert jwt_plugin["maximum_expiration"] == KONG_JWT_MAXIMUM_EXPIRATION
    credentials = {c["jwt_secrets"][0]["key"]: c["jwt_secrets"][0]["algorithm"] for c in config["consumers"]}
    assert credentials == {key: alg for alg, key in KONG_JWT_KEYS.items()}


def test_key_auth_reads_the_apikey_header_only() -> None:
    config = load("key_auth")
    key_auth = plugins(config)["key-auth"]
    assert key_auth["key_names"] == ["apikey"]
    assert (key_auth["key_in_header"], key_auth["key_in_query"], key_auth["key_in_body"]) == (True, False, False)
    assert [c["username"] for c in config["consumers"]] == [KEY_AUTH_CONSUMER]
