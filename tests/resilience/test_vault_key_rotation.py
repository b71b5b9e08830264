"""Vault identity signing key rotated: tokens keep verifying, at the gateway and in the backend's own JWKS check.

A dedicated named key and role (6 s tokens) on the session's OpenBao, an AppRole with its own entity, and a gateway
of this test's own whose `/vault-rot` route trusts Vault's JWKS by ``kid`` (as Kong's openid-connect does).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.connection import Connection

from devstack.gateway import Gateway, JwtRoute, jwks_key_files, start_gateway
from devstack.stack import ORDERS_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from kong_secrets_backend.flows import vault_identity
from kong_secrets_backend.state import PROCESS
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

TOKEN_TTL = 6  # seconds: the backend refreshes at half of it (3 s)
ROUTE = "/vault-rot"


@dataclass(frozen=True)
class RotatingIdentity:
    key: str
    role: str
    audience: str
    role_id: str
    secret_id: str


@pytest.fixture
def rotating(stack: Stack) -> Iterator[RotatingIdentity]:
    """A named key + role of this test's own, and an AppRole login (with an entity) that may sign with it."""
    suffix = uuid.uuid4().hex[:8]
    key, role, audience = f"rot-{suffix}", f"rot-{suffix}", f"https://kong.example.com/vault-rot-{suffix}"
    root = stack.bao.client()
    identity = root.secrets.identity
    identity.create_named_key(
        key, algorithm="ES256", allowed_client_ids=[audience], rotation_period="24h", verification_ttl="1h"
    )
    identity.create_or_update_role(
        role, key=key, client_id=audience, ttl=f"{TOKEN_TTL}s", template=json.dumps({"scope": ORDERS_SCOPE})
    )
    policy = stack.bao.read_only_policy("secret", ["connections"])
    policy += f'\npath "identity/oidc/token/{role}" {{\n  capabilities = ["read"]\n}}\n'
    role_id, secret_id = stack.bao.setup_approle(f"rot-{suffix}", f"rot-{suffix}", policy)
    LEAKS.plant(secret_id)
    identity.create_or_update_entity(name=f"rot-{suffix}")
    entity_id = identity.read_entity_by_name(f"rot-{suffix}")["data"]["id"]
    accessor = root.sys.list_auth_methods()["data"]["approle/"]["accessor"]
    identity.create_or_update_entity_alias(name=role_id, canonical_id=entity_id, mount_accessor=accessor)
    vault_identity.forget_jwks()
    try:
        yield RotatingIdentity(key, role, audience, role_id, secret_id)
    finally:
        vault_identity.forget_jwks()
        identity.delete_role(role)
        identity.delete_named_key(key)


@pytest.fixture
def gateway_dir(tmp_path: Path) -> Path:
    return tmp_path / "gateway"


def _jwks(stack: Stack) -> dict[str, Any]:
    return dict(requests.get(f"{stack.bao.url}/v1/identity/oidc/.well-known/keys", timeout=5).json())


def _route(stack: Stack, rotating: RotatingIdentity, keys_dir: Path) -> JwtRoute:
    """The route's key set: every ES256 key of Vault's JWKS right now, by kid."""
    keys = jwks_key_files(_jwks(stack), keys_dir, algorithm="ES256")
    return JwtRoute(
        ROUTE, keys, f"{stack.bao.url}/v1/identity/oidc", rotating.audience, ORDERS_SCOPE, algorithm="ES256"
    )


def _kid(token: str) -> str:
    header = token.removeprefix("Bearer ").split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def _status(gateway: Gateway, token: str) -> int:
    return requests.get(f"{gateway.url}{ROUTE}", headers={"Authorization": token}, timeout=5).status_code


def _signed_by_vault(stack: Stack, rotating: RotatingIdentity) -> str:
    """A token Vault signs right now for the role (outside the backend)."""
    login = stack.bao.client(token="")
    login.auth.approle.login(role_id=rotating.role_id, secret_id=rotating.secret_id)
    try:
        token = str(login.secrets.identity.generate_signed_id_token(rotating.role)["data"]["token"])
    finally:
        login.auth.token.revoke_self()
    LEAKS.plant(token)
    return f"Bearer {token}"


def _rotate(stack: Stack, key: str) -> None:
    # hvac's rotate_named_key posts to the wrong URL: call the API directly
    resp = stack.bao.client().adapter.post(f"/v1/identity/oidc/key/{key}/rotate", json={"verification_ttl": "1h"})
    assert getattr(resp, "status_code", 204) in (200, 204)


def _cached_kids() -> set[str]:
    documents = [PROCESS.jwks.get(identity) or {} for identity in PROCESS.jwks]
    return {k["kid"] for jwks in documents for k in jwks.get("keys", [])}


def test_tokens_keep_verifying_across_a_vault_signing_key_rotation(
    stack: Stack, rotating: RotatingIdentity, gateway_dir: Path
) -> None:
    host, port = stack.gateway_host_port()
    cid = f"vault_rot_{uuid.uuid4().hex[:8]}"
    stack.put(
        f"connections/{cid}",
        {
            "conn_type": "http",
            "host": host,
            "port": port,
            "schema": "http",
            "kong_auth": {"flow": "vault_identity", "role": rotating.role},
        },
    )
    backend = KongSecretsBackend(
        url=stack.bao.url,
        auth_type="approle",
        role_id=rotating.role_id,
        secret_id=rotating.secret_id,
        refresh_jitter=0,
        credential_cache_ttl=60,
    )
    set_connection_class(backend, Connection)

    def resolve() -> str:
        conn = backend.get_connection(cid)
        assert conn is not None
        token = str(conn.extra_dejson["Authorization"])
        LEAKS.plant(token.removeprefix("Bearer "))
        return token

    gateway = start_gateway(gateway_dir, [_route(stack, rotating, gateway_dir / "jwks-0")])
    try:
        before = resolve()
        issued = time.monotonic()
        assert _status(gateway, before) == 200

        # Vault publishes the next key ahead of a rotation; two rotations reach a key nobody has seen yet.
        _rotate(stack, rotating.key)
        _rotate(stack, rotating.key)
        after_rotation = _signed_by_vault(stack, rotating)
        new_kid = _kid(after_rotation)
        assert new_kid != _kid(before)
        assert new_kid not in _cached_kids()  # the backend's JWKS (cached at the first mint) does not know it
        assert _status(gateway, after_rotation) == 401  # nor does the gateway's key set: it picks keys by kid
        assert resolve() == before  # the backend's token is still fresh: served as it is

        gateway.reload([_route(stack, rotating, gateway_dir / "jwks-1")])  # the new JWKS: old and new keys
        assert _status(gateway, before) == 200  # signed before the rotation, still verifies
        assert _status(gateway, after_rotation) == 200

        time.sleep(max(0.0, TOKEN_TTL / 2 + 0.2 - (time.monotonic() - issued)))  # past the refresh point
        refreshed = resolve()
        assert refreshed != before
        assert _kid(refreshed) == new_kid  # minted and verified by the backend: its JWKS was fetched again
        assert new_kid in _cached_kids()
        assert _status(gateway, refreshed) == 200
    finally:
        gateway.stop()
