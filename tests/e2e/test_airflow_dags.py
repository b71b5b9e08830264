"""Real `airflow dags test` runs of the unchanged example DAGs, through the real stack.

One run per scenario (each costs ~10-15 s): the checks of a scenario are grouped on its run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import run_example_dag

pytestmark = pytest.mark.e2e


def test_unchanged_http_operator_dag_calls_the_api_through_the_gateway(stack: Stack, tmp_path: Path) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    result, received = run_example_dag(stack, tmp_path, "kong_orders")
    output = result.all_output
    assert [r["path"] for r in received] == ["/orders"]
    headers = received[0]["headers"]
    assert headers["x-consumer-username"] == "airflow-orders"  # the identity the gateway verified
    assert headers["authorization"].startswith("Bearer ")
    assert stack.idp.token_requests("airflow-orders") == 1  # both resolutions of the request share one token

    raw_token = headers["authorization"].removeprefix("Bearer ")
    assert_no_secrets(output, [*stack.planted_secrets(), raw_token])
    assert "minted a client_credentials token for conn_id kong_orders" in output  # our log lines were captured
    assert '"consumer": "airflow-orders"' in output  # log_response=True: the API's answer is in the task log
