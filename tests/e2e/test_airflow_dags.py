"""Real `airflow dags test` runs of the unchanged example DAGs, through the real stack.

One run per scenario (each costs ~10-15 s): the checks of a scenario are grouped on its run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.airflow import EXAMPLE_DAGS, dags_test, prepare_airflow
from devstack.stack import Stack
from tests.conftest import assert_no_secrets

pytestmark = pytest.mark.e2e

# Everything on the resolution path at DEBUG, so the leak scan sees the most. Not Airflow's own DEBUG: in
# `dags test`, Airflow 3.3's in-process supervisor logs every MaskSecret request verbatim at DEBUG
# (airflow/sdk/execution_time/supervisor.py, "Sending request"), for any backend's secrets (see README).
LEAK_SCAN_LOGGING = {
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": (
        "kong_secrets_backend=DEBUG hvac=DEBUG authlib=DEBUG urllib3=DEBUG requests=DEBUG "
        "airflow.providers.http=DEBUG airflow.task.operators=DEBUG"
    ),
}


def test_unchanged_http_operator_dag_calls_the_api_through_the_gateway(stack: Stack, tmp_path: Path) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    stack.idp.reset_counts()
    seen_before = len(stack.gateway.received())
    af = prepare_airflow(
        tmp_path,
        backend="kong_secrets_backend.KongSecretsBackend",
        backend_kwargs=stack.backend_kwargs(),
        dags_folder=EXAMPLE_DAGS,
        extra_env=LEAK_SCAN_LOGGING,
    )
    result = dags_test(af, "kong_orders")
    output = result.all_output
    assert result.ok, output[-6000:]
    print(f"\nairflow dags test kong_orders: {result.duration:.1f}s")

    received = stack.gateway.received()[seen_before:]
    assert [r["path"] for r in received] == ["/orders"]
    headers = received[0]["headers"]
    assert headers["x-consumer-username"] == "airflow-orders"  # the identity the gateway verified
    assert headers["authorization"].startswith("Bearer ")
    assert stack.idp.token_requests("airflow-orders") == 1  # both resolutions of the request share one token

    raw_token = headers["authorization"].removeprefix("Bearer ")
    assert_no_secrets(output, [*stack.planted_secrets(), raw_token])
    assert "minted a client_credentials token for conn_id kong_orders" in output  # our log lines were captured
    assert '"consumer": "airflow-orders"' in output  # log_response=True: the API's answer is in the task log
