"""Only ``[secrets] backend`` is set (no ``[workers] secrets_backend``): in a real LocalExecutor deployment the
task processes fall back to the same settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.deployment import start_deployment
from devstack.stack import Stack
from tests.deployment.helpers import CLIENT, DAG_FILES, LEAK_SCAN_LOGGING, assert_no_leaks, assert_run_ok, observed

pytestmark = pytest.mark.deployment


def test_with_only_the_secrets_section_the_workers_read_the_same_settings(stack: Stack, tmp_path: Path) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    with start_deployment(
        stack,
        tmp_path,
        executor="local",
        secrets_section="secrets",
        backend_kwargs=stack.backend_kwargs(token_cache="file"),
        dags=DAG_FILES,
        extra_env=LEAK_SCAN_LOGGING,
    ) as dep:
        print(f"\nLocalExecutor deployment ([secrets] only) started in {dep.startup_seconds:.1f}s")
        assert not dep.env["AIRFLOW__WORKERS__SECRETS_BACKEND"] and dep.env["AIRFLOW__SECRETS__BACKEND"]
        with observed(stack) as seen:
            result = dep.run("kong_orders_parallel", timeout=150)
        print(f"kong_orders_parallel ([secrets] only): {result.seconds:.1f}s")
        assert_run_ok(dep, result)
        assert len(seen.requests) == 6 and seen.consumers == {CLIENT}
        assert seen.task_ids == sorted(result.tasks)
        assert seen.idp_token_requests == 1
        assert_no_leaks(stack, dep, result, seen)
