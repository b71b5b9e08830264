"""A real LocalExecutor deployment (api-server, scheduler, dag-processor, triggerer) runs the example DAGs,
triggered with `airflow dags trigger`: each task in its own process under a supervisor, through the gateway.
The backend is configured under ``[workers] secrets_backend`` with ``token_cache: "file"``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.deployment import SCHEDULER_HOST, Deployment, start_deployment
from devstack.stack import Stack
from tests.deployment.helpers import (
    CLIENT,
    DAG_FILES,
    LEAK_SCAN_LOGGING,
    assert_no_leaks,
    assert_run_ok,
    observed,
)

pytestmark = pytest.mark.deployment


@pytest.fixture(scope="module")
def local(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    stack.put("connections/kong_orders", stack.kong_connection())
    dep = start_deployment(
        stack,
        tmp_path_factory.mktemp("local-deployment"),
        executor="local",
        secrets_section="workers",
        backend_kwargs=stack.backend_kwargs(token_cache="file"),
        dags=DAG_FILES,
        extra_env=LEAK_SCAN_LOGGING,
    )
    print(f"\nLocalExecutor deployment started in {dep.startup_seconds:.1f}s")
    try:
        yield dep
    finally:
        dep.stop()
        print(f"\nLocalExecutor deployment stopped in {dep.stop_seconds:.1f}s")


def test_every_component_listens_on_loopback_only(local: Deployment) -> None:
    listening = local.listening_addresses()
    assert listening["api-server"], listening
    assert all(addr.startswith("127.0.0.1:") for addrs in listening.values() for addr in addrs), listening


def test_six_parallel_tasks_in_their_own_processes_cost_one_token_request(stack: Stack, local: Deployment) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    with observed(stack) as seen:
        result = local.run("kong_orders_parallel", timeout=150)
    print(f"\nkong_orders_parallel: {result.seconds:.1f}s, up to {result.max_concurrency()} tasks at once")
    assert_run_ok(local, result)
    assert len(result.tasks) == 6 and set(result.task_states.values()) == {"success"}
    assert len({t.pid for t in result.tasks.values()}) == 6  # one process per task
    assert result.max_concurrency() >= 2, result.tasks  # they overlapped: the file cache was raced for
    assert set(result.hosts.values()) == {SCHEDULER_HOST}

    assert [r["path"] for r in seen.requests] == ["/orders"] * 6
    assert seen.consumers == {CLIENT}  # the identity the gateway verified
    assert seen.task_ids == sorted(result.tasks)  # each task's own request, named by its X-Airflow-Task-Id
    assert result.trace_id and seen.trace_ids == {result.trace_id}  # Kong sees the run's trace id
    assert len(seen.tokens) == 1  # every task sent the same token...
    assert seen.idp_token_requests == 1  # ...minted once for the six processes of this host
    cache_dir = local.host_homes[SCHEDULER_HOST] / ".cache" / "kong-secrets-backend"
    assert any(cache_dir.iterdir()), "the file cache lives under the host's XDG_CACHE_HOME"
    assert_no_leaks(stack, local, result, seen)


def test_a_deferrable_http_operator_completes_through_the_triggerer(stack: Stack, local: Deployment) -> None:
    with observed(stack) as seen:
        result = local.run("kong_orders_deferrable", timeout=150)
    print(f"\nkong_orders_deferrable: {result.seconds:.1f}s")
    assert_run_ok(local, result)
    files = local.task_log_files(result.dag_id, result.run_id)
    assert any(".trigger." in name for name in files), sorted(files)  # the triggerer ran its HttpTrigger
    assert len(seen.requests) == 1
    assert "aiohttp" in seen.user_agents()[0]  # HttpAsyncHook in the triggerer, not requests in a worker
    assert seen.consumers == {CLIENT}
    assert result.trace_id and seen.trace_ids == {result.trace_id}  # the trace continues in the triggerer
    assert seen.idp_token_requests <= 1  # the host's file cache may still hold the token of the run before
    assert_no_leaks(stack, local, result, seen)
