"""One `airflow dags test` of examples/dags/kong_auth_flows.py: every way Kong authenticates, end to end.

One task per flow, each with its own connection and gateway route (HAProxy configured as the Kong plugin):
private_key_jwt (via OpenID discovery) and client_secret_jwt against the IdP, Kong's jwt plugin, key-auth, and a
Vault identity token. One run carries every check: task states, what the upstream saw per route, how many token
requests reached the IdP, and a leak scan of the whole output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import KEY_AUTH_CONSUMER, KONG_JWT_KEYS, Stack
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import run_example_dag

pytestmark = pytest.mark.e2e

DAG_ID = "kong_auth_flows"
# task id -> (conn_id, Stack.flow_auth flow, route, consumer the gateway verified; "<entity>" = Vault entity id)
TASKS = {
    "private_key_jwt": ("kong_orders_private_key_jwt", "private_key_jwt", "/orders", "airflow-pkjwt"),
    "client_secret_jwt": ("kong_orders_client_secret_jwt", "client_secret_jwt", "/orders", "airflow-csjwt"),
    "kong_jwt": ("kong_orders_kong_jwt", "kong_jwt", "/jwt-orders", f"{KONG_JWT_KEYS['HS256']}-consumer"),
    "key_auth": ("kong_orders_key_auth", "key_auth", "/key-orders", KEY_AUTH_CONSUMER),
    "vault_identity": ("kong_orders_vault_identity", "vault_identity", "/vault-orders", "<entity>"),
}


def test_one_dag_calls_the_api_through_each_kong_auth_plugin(stack: Stack, tmp_path: Path) -> None:
    assert stack.vault_identity is not None
    for conn_id, flow, _, _ in TASKS.values():
        stack.put(f"connections/{conn_id}", stack.flow_connection(flow))
    result, received = run_example_dag(stack, tmp_path, DAG_ID)
    output = result.all_output
    assert result.task_states == dict.fromkeys(TASKS, "success")

    assert len(received) == len(TASKS)  # one request per task, each passed its route's plugin
    consumers = sorted((r["path"], r["headers"]["x-consumer-username"]) for r in received)
    expected = sorted(
        (route, stack.vault_identity.entity_id if consumer == "<entity>" else consumer)
        for _, _, route, consumer in TASKS.values()
    )
    assert consumers == expected
    by_path = {r["path"]: r["headers"] for r in received if r["path"] != "/orders"}
    assert (
        by_path["/key-orders"]["apikey"] == stack.flow_secrets.api_key and "authorization" not in by_path["/key-orders"]
    )
    assert by_path["/jwt-orders"]["x-credential-identifier"] == KONG_JWT_KEYS["HS256"]

    # Both resolutions of each HttpOperator request share one token: one token request per IdP client.
    assert stack.idp.token_requests("airflow-pkjwt") == 1
    assert stack.idp.token_requests("airflow-csjwt") == 1

    tokens = [
        r["headers"]["authorization"].removeprefix("Bearer ") for r in received if "authorization" in r["headers"]
    ]
    assert len(tokens) == len(TASKS) - 1
    assert_no_secrets(output, [*stack.planted_secrets(), *tokens])
    for task_id, (conn_id, flow, _, _) in TASKS.items():
        if flow != "key_auth":
            name = "client_credentials" if flow.endswith("_jwt") and flow != "kong_jwt" else flow
            assert f"minted a {name} token for conn_id {conn_id}" in output, task_id
