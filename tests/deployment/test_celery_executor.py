"""A real CeleryExecutor deployment: Redis broker, two `airflow celery worker` processes standing for two hosts
(each its own HOME, XDG_CACHE_HOME, TMPDIR), and a fleet token cache on another Redis (``token_cache`` a
``redis://`` URL). Runs are triggered with `airflow dags trigger`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.deployment import CELERY_WORKERS, Deployment, start_deployment
from devstack.redis import Redis, start_redis
from devstack.stack import Stack
from tests.deployment.helpers import (
    CLIENT,
    DAG_FILES,
    LEAK_SCAN_LOGGING,
    assert_no_leaks,
    assert_run_ok,
    audit_records,
    jwt_claims,
    observed,
)

pytestmark = pytest.mark.deployment


@pytest.fixture(scope="module")
def token_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = start_redis(tmp_path_factory.mktemp("token-redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def celery(stack: Stack, token_redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    stack.put("connections/kong_orders", stack.kong_connection())
    dep = start_deployment(
        stack,
        tmp_path_factory.mktemp("celery-deployment"),
        executor="celery",
        secrets_section="workers",
        backend_kwargs=stack.backend_kwargs(token_cache=token_redis.url),
        dags=DAG_FILES,
        extra_env=LEAK_SCAN_LOGGING,
    )
    print(f"\nCeleryExecutor deployment started in {dep.startup_seconds:.1f}s")
    try:
        yield dep
    finally:
        dep.stop()
        print(f"\nCeleryExecutor deployment stopped in {dep.stop_seconds:.1f}s {dep.stop_times}")


def test_eight_tasks_on_two_worker_hosts_cost_one_token_request_for_the_fleet(
    stack: Stack, celery: Deployment, token_redis: Redis
) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    with observed(stack) as seen:
        result = celery.run("kong_orders_fleet", timeout=150)
    hosts = result.hosts
    print(f"\nkong_orders_fleet: {result.seconds:.1f}s, hosts {sorted(hosts.values())}")
    assert_run_ok(celery, result)
    assert len(result.tasks) == 8 and set(result.task_states.values()) == {"success"}
    assert set(hosts.values()) == set(CELERY_WORKERS), hosts  # both workers ran tasks
    assert len({celery.host_homes[h] for h in CELERY_WORKERS}) == 2  # two hosts: nothing on disk is shared

    assert [r["path"] for r in seen.requests] == ["/orders"] * 8
    assert seen.consumers == {CLIENT}
    assert seen.task_ids == sorted(result.tasks)
    assert result.trace_id and seen.trace_ids == {result.trace_id}  # one trace id across both hosts
    assert len(seen.tokens) == 1  # one token for the fleet...
    assert seen.idp_token_requests == 1  # ...minted once, shared through Redis
    assert token_redis.keys(), "the token is in the fleet cache"
    records = audit_records(celery, result)
    (token,) = seen.tokens
    uses = {name: [r for r in rs if r["event"] == "use"] for name, rs in records.items()}
    assert {name: [(r["task_id"], r["token_id"], r["trace_id"]) for r in rs] for name, rs in uses.items()} == {
        f"task_id={t}/attempt=1.log": [(t, jwt_claims(token)["jti"], result.trace_id)] for t in result.tasks
    }
    assert len([r for rs in records.values() for r in rs if r["event"] == "mint"]) == 1  # one mint, two hosts
    assert_no_leaks(stack, celery, result, seen, token_redis.password)


def test_a_deferrable_http_operator_completes_through_the_triggerer(stack: Stack, celery: Deployment) -> None:
    with observed(stack) as seen:
        result = celery.run("kong_orders_deferrable", timeout=150)
    print(f"\nkong_orders_deferrable (celery): {result.seconds:.1f}s")
    assert_run_ok(celery, result)
    files = celery.task_log_files(result.dag_id, result.run_id)
    assert any(".trigger." in name for name in files), sorted(files)
    assert len(seen.requests) == 1 and "aiohttp" in seen.user_agents()[0]
    assert seen.consumers == {CLIENT} and seen.task_ids == ["get_orders_deferred"]
    assert result.trace_id and seen.trace_ids == {result.trace_id}
    assert seen.idp_token_requests <= 1  # none when the fleet cache still holds the token of the run before
