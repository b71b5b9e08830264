"""A real LocalExecutor deployment (api-server, scheduler, dag-processor, triggerer) runs the example DAGs,
triggered with `airflow dags trigger`: each task in its own process under a supervisor, through the gateway.
The backend is configured under ``[workers] secrets_backend`` with ``token_cache: "file"``.

Six parallel tasks share one token; a deferrable task resolves in the triggerer as itself; task_scopes give each
task its scope and Kong enforces it; each DAG reaches Kong as its own consumer; every task log holds its audit
records, and no log holds a secret or a token.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.deployment import SCHEDULER_HOST, Deployment, start_deployment
from devstack.stack import ORDERS_AUDIENCE, ORDERS_SCOPE, ORDERS_WRITE_SCOPE, Stack
from tests.deployment.helpers import (
    CLIENT,
    DAG_FILES,
    LEAK_SCAN_LOGGING,
    LEAST_PRIVILEGE_DAG_FILES,
    assert_no_leaks,
    assert_run_ok,
    audit_records,
    jwt_claims,
    observed,
)

pytestmark = pytest.mark.deployment

WRITE = f"{ORDERS_SCOPE} {ORDERS_WRITE_SCOPE}"
CONSUMERS = "kong-credentials/consumers"  # a credential per DAG: <CONSUMERS>/<dag_id>


@pytest.fixture(scope="module")
def local(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    stack.put("connections/kong_orders", stack.kong_connection())
    dep = start_deployment(
        stack,
        tmp_path_factory.mktemp("local-deployment"),
        executor="local",
        secrets_section="workers",
        backend_kwargs=stack.backend_kwargs(token_cache="file"),
        dags=[*DAG_FILES, *LEAST_PRIVILEGE_DAG_FILES],
        extra_env=LEAK_SCAN_LOGGING,
    )
    print(f"\nLocalExecutor deployment started in {dep.startup_seconds:.1f}s")
    try:
        yield dep
    finally:
        dep.stop()
        print(f"\nLocalExecutor deployment stopped in {dep.stop_seconds:.1f}s {dep.stop_times}")


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

    # The audit trail, in each task's own log: one "use" per task try, one "mint" for the run; one trace id
    # joins the task log, the audit record and what Kong received, one token id joins the record and the token.
    records = audit_records(local, result)
    (token,) = seen.tokens
    for task_id in result.tasks:
        uses = [r for r in records[f"task_id={task_id}/attempt=1.log"] if r["event"] == "use"]
        assert uses == [
            {
                **uses[0],
                "conn_id": "kong_orders",
                "dag_id": "kong_orders_parallel",
                "task_id": task_id,
                "run_id": result.run_id,
                "try_number": 1,
                "map_index": None,
                "flow": "client_credentials",
                "consumer": CLIENT,
                "scope": ORDERS_SCOPE,
                "audience": ORDERS_AUDIENCE,
                "token_id": jwt_claims(token)["jti"],
                "trace_id": result.trace_id,
            }
        ]
    mints = [r for rs in records.values() for r in rs if r["event"] == "mint"]
    assert len(mints) == 1 and mints[0]["token_id"] == jwt_claims(token)["jti"]
    assert_no_leaks(stack, local, result, seen)


def test_a_deferrable_http_operator_completes_through_the_triggerer_as_its_task(
    stack: Stack, local: Deployment
) -> None:
    # allowed_dags refuses a resolution outside any task: the triggerer must know whose trigger it runs
    stack.put("connections/kong_orders", stack.kong_connection(allowed_dags=["kong_orders_deferrable"]))
    with observed(stack) as seen:
        result = local.run("kong_orders_deferrable", timeout=150)
    print(f"\nkong_orders_deferrable: {result.seconds:.1f}s")
    assert_run_ok(local, result)
    records = audit_records(local, result)
    trigger_logs = [name for name in records if ".trigger." in name]
    assert len(trigger_logs) == 1, sorted(records)  # the triggerer ran its HttpTrigger
    assert len(seen.requests) == 1
    assert "aiohttp" in seen.user_agents()[0]  # HttpAsyncHook in the triggerer, not requests in a worker
    assert seen.consumers == {CLIENT}
    assert seen.task_ids == ["get_orders_deferred"]  # the deferred task's identity, in the triggerer
    assert result.trace_id and seen.trace_ids == {result.trace_id}  # the trace continues in the triggerer
    assert seen.idp_token_requests <= 1  # a new KV version may be a new token; at most one
    uses = [r for r in records[trigger_logs[0]] if r["event"] == "use"]
    assert [(r["dag_id"], r["task_id"], r["run_id"], r["trace_id"]) for r in uses] == [
        ("kong_orders_deferrable", "get_orders_deferred", result.run_id, result.trace_id)
    ]
    assert_no_leaks(stack, local, result, seen)


def test_each_task_gets_the_scope_task_scopes_give_it_and_kong_enforces_it(stack: Stack, local: Deployment) -> None:
    task_scopes = [{"dags": ["kong_orders_scoped"], "tasks": ["post_orders"], "scope": WRITE}]
    stack.put("connections/kong_orders_rw", stack.kong_connection("airflow-writer", task_scopes=task_scopes))
    with observed(stack, clients=["airflow-writer"]) as seen:
        result = local.run("kong_orders_scoped", timeout=150)
    print(f"\nkong_orders_scoped: {result.seconds:.1f}s")
    assert result.task_states == {"get_orders": "success", "post_orders": "success", "post_orders_unscoped": "failed"}
    logs = local.task_log_files(result.dag_id, result.run_id)
    assert "403" in logs["task_id=post_orders_unscoped/attempt=1.log"]  # Kong refused the read-only token's write

    # the API behind Kong saw each task's own scope (the refused write never reached it)
    scopes = {task: set(str(scope).split()) for task, (scope,) in seen.by_task("x-authenticated-scope").items()}
    assert scopes == {"get_orders": {ORDERS_SCOPE}, "post_orders": set(WRITE.split())}
    assert seen.idp_requests["airflow-writer"] == 2  # one token per distinct scope on this host
    audited = {r["task_id"]: set(r["scope"].split()) for rs in audit_records(local, result).values() for r in rs}
    assert audited == {**scopes, "post_orders_unscoped": {ORDERS_SCOPE}}
    assert_no_leaks(stack, local, result, seen)


def test_each_dag_reaches_kong_as_its_own_consumer_and_a_dag_without_one_is_refused(
    stack: Stack, local: Deployment
) -> None:
    stack.put(f"{CONSUMERS}/orders_billing", stack.kong_auth("airflow-orders"))
    stack.put(f"{CONSUMERS}/orders_shipping", stack.kong_auth("airflow-post"))
    stack.put("connections/kong_orders_per_dag", stack.connection({"credentials_path": f"{CONSUMERS}/{{dag_id}}"}))
    dag_ids = ("orders_billing", "orders_shipping", "orders_unregistered")
    with observed(stack, clients=["airflow-orders", "airflow-post"]) as seen:
        runs = {dag_id: local.trigger(dag_id) for dag_id in dag_ids}
        results = {dag_id: local.wait(dag_id, run_id, timeout=150) for dag_id, run_id in runs.items()}
    print(f"\nthree DAGs, three consumers: {max(r.seconds for r in results.values()):.1f}s")
    assert {d: r.state for d, r in results.items()} == dict(zip(dag_ids, ("success", "success", "failed"), strict=True))
    consumers = {r["headers"].get("x-airflow-dag-id"): r["headers"].get("x-consumer-username") for r in seen.requests}
    assert consumers == {"orders_billing": "airflow-orders", "orders_shipping": "airflow-post"}
    refused = local.task_logs("orders_unregistered", runs["orders_unregistered"])
    assert f"{CONSUMERS}/orders_unregistered" in refused  # the log names the missing credential's path
    for result in results.values():
        assert_no_leaks(stack, local, result, seen)

    # The audit record names the consumer Kong saw (contract section 7), readable in the task log: public fields
    # are not masked (section 6).
    audited = {}
    for dag_id in ("orders_billing", "orders_shipping"):
        (record,) = [r for rs in audit_records(local, results[dag_id]).values() for r in rs if r["event"] == "use"]
        audited[dag_id] = record["consumer"]
    assert audited == consumers
