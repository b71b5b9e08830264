"""One `airflow dags test` of examples/dags/kong_http_consumers.py: every HTTP consumer, through the gateway.

Sync HttpOperator, paginated HttpOperator (the short-lived token expires between pages), deferrable HttpOperator
(the trigger runs in-process in `dags test`), HttpSensor and a @task with HttpHook. One run (~20-25 s) carries
all the checks: task states, what the upstream saw for each task, and the leak scan of the whole output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import run_example_dag

pytestmark = pytest.mark.e2e

DAG_ID = "kong_http_consumers"
SHORT_CLIENT = "airflow-blink"  # 5 s tokens
PAGE_PAUSE = 6.5  # longer than the short client's token lifetime
TASK_PATHS = {
    "sync_request": "/orders",
    "paginated_request": "/orders/pages",
    "deferred_request": "/orders/deferred",
    "wait_until_ready": "/orders/ready",
    "hook_request": "/orders/hook",
}


def test_every_http_consumer_calls_the_api_through_the_gateway_with_a_fresh_token(stack: Stack, tmp_path: Path) -> None:
    stack.put("connections/kong_orders", stack.kong_connection())
    stack.put("connections/kong_orders_short", stack.kong_connection(SHORT_CLIENT))
    result, received = run_example_dag(stack, tmp_path, DAG_ID, extra_env={"KONG_EXAMPLE_PAGE_PAUSE": str(PAGE_PAUSE)})
    output = result.all_output
    assert result.task_states == dict.fromkeys(TASK_PATHS, "success")

    by_path: dict[str, list[dict]] = {}
    for request in received:
        by_path.setdefault(request["path"], []).append(request)
    assert set(by_path) == set(TASK_PATHS.values())  # every consumer reached the upstream, and nothing else did
    tokens = [r["headers"]["authorization"].removeprefix("Bearer ") for r in received]

    # Every request passed the gateway's signature, expiry, audience and scope checks as the right consumer.
    for task_id, path in TASK_PATHS.items():
        expected_consumer = SHORT_CLIENT if task_id == "paginated_request" else "airflow-orders"
        assert {r["headers"]["x-consumer-username"] for r in by_path[path]} == {expected_consumer}, task_id

    # Pagination: three pages; the token that served page 1 had expired before page 2, so page 2 brought a new one.
    pages = by_path["/orders/pages"]
    assert [r["query"] for r in pages] == ["page=1", "page=2", "page=3"]
    page_tokens = [r["headers"]["authorization"] for r in pages]
    assert page_tokens[0] != page_tokens[1]
    short_mints = stack.idp.token_requests(SHORT_CLIENT)
    assert short_mints == len(set(page_tokens)) in (2, 3)  # 3 only if page 3 came >2.5 s later (a slow machine)
    # The four other consumers share one token: one mint for the whole run (the process-wide cache).
    assert stack.idp.token_requests("airflow-orders") == 1

    # Correlation headers: the task's identity on every request made inside a task ...
    for task_id in ("sync_request", "paginated_request", "wait_until_ready", "hook_request"):
        for request in by_path[TASK_PATHS[task_id]]:
            headers = request["headers"]
            assert headers["x-airflow-dag-id"] == DAG_ID
            assert headers["x-airflow-task-id"] == task_id
            assert headers["x-airflow-run-id"].startswith("manual__")
            assert headers["x-airflow-try-number"] == "1"
    # ... but none from the trigger, which runs outside any task (as in a real triggerer).
    assert not any(k.startswith("x-airflow-") for k in by_path["/orders/deferred"][0]["headers"])

    assert_no_secrets(output, [*stack.planted_secrets(), *tokens])
    assert output.count("minted a client_credentials token for conn_id kong_orders_short") == short_mints
