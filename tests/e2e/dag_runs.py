"""Run an example DAG with `airflow dags test` through the session stack, the way every e2e test does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.airflow import EXAMPLE_DAGS, DagRunResult, dags_test, prepare_airflow
from devstack.stack import Stack

# Everything on the resolution path at DEBUG, so the leak scan sees the most. Not Airflow's own DEBUG: in
# `dags test`, Airflow 3.3's in-process supervisor logs every MaskSecret request verbatim at DEBUG
# (airflow/sdk/execution_time/supervisor.py, "Sending request"), for any backend's secrets (see docs/security.md).
LEAK_SCAN_LOGGING = {
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": (
        "kong_secrets_backend=DEBUG hvac=DEBUG authlib=DEBUG urllib3=DEBUG requests=DEBUG "
        "airflow.providers.http=DEBUG airflow.task.operators=DEBUG"
    ),
}


def run_example_dag(
    stack: Stack, workdir: Path, dag_id: str, *, extra_env: Mapping[str, str] | None = None
) -> tuple[DagRunResult, list[dict[str, Any]]]:
    """Run dag_id with KongSecretsBackend on the stack's Vault; return the run and what the upstream received.

    IdP counters are reset first, so `stack.idp.token_requests()` afterwards counts this run's mints.
    """
    stack.idp.reset_counts()
    seen_before = len(stack.gateway.received())
    af = prepare_airflow(
        workdir,
        backend="kong_secrets_backend.KongSecretsBackend",
        backend_kwargs=stack.backend_kwargs(),
        dags_folder=EXAMPLE_DAGS,
        extra_env={**LEAK_SCAN_LOGGING, **(extra_env or {})},
    )
    result = dags_test(af, dag_id)
    print(f"\nairflow dags test {dag_id}: {result.duration:.1f}s")
    assert result.ok, result.all_output[-6000:]
    return result, stack.gateway.received()[seen_before:]
