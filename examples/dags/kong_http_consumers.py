"""Every way a DAG calls an HTTP API, each through Kong with a token the secrets backend puts in the connection.

No task knows about auth: `kong_orders` (and `kong_orders_short`, a client whose tokens live seconds) are
connections whose secret holds a `kong_auth` block; the backend returns them with `Authorization: Bearer ...`
in the extras, which HttpHook sends as a header.

- `sync_request`: a plain HttpOperator.
- `paginated_request`: HttpOperator with a `pagination_function`; every page resolves the connection again, so
  a token that expires between two pages is replaced before the next request.
- `deferred_request`: HttpOperator(deferrable=True); the request runs in the triggerer (HttpTrigger).
- `wait_until_ready`: HttpSensor.
- `hook_request`: a @task that uses HttpHook directly.

``KONG_EXAMPLE_PAGE_PAUSE`` (seconds, default 0) makes `paginated_request` wait before the second page, like a
slow consumer; the test suite sets it longer than the short-lived token's lifetime.
"""

from __future__ import annotations

import os
import time
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG, task

PAGE_PAUSE = float(os.environ.get("KONG_EXAMPLE_PAGE_PAUSE", "0"))


def next_page(response: Any) -> dict[str, Any] | None:
    """The API answers `next_page` until the last page; ask for it with `?page=N`."""
    page = response.json().get("next_page")
    if page is None:
        return None
    if page == 2 and PAGE_PAUSE:
        time.sleep(PAGE_PAUSE)
    return {"data": {"page": page}}


with DAG(dag_id="kong_http_consumers", schedule=None, tags=["kong"]):
    HttpOperator(
        task_id="sync_request",
        http_conn_id="kong_orders",
        endpoint="/orders",
        method="GET",
        response_check=lambda response: response.json()["consumer"] is not None,
    )

    HttpOperator(
        task_id="paginated_request",
        http_conn_id="kong_orders_short",
        endpoint="/orders/pages",
        method="GET",
        data={"page": 1},
        pagination_function=next_page,
        response_filter=lambda responses: [item["id"] for r in responses for item in r.json()["items"]],
    )

    HttpOperator(
        task_id="deferred_request",
        http_conn_id="kong_orders",
        endpoint="/orders/deferred",
        method="GET",
        deferrable=True,
    )

    HttpSensor(
        task_id="wait_until_ready",
        http_conn_id="kong_orders",
        endpoint="/orders/ready",
        response_check=lambda response: response.json().get("consumer") is not None,
        poke_interval=1,
        timeout=60,
    )

    @task
    def hook_request() -> str:
        response = HttpHook(method="GET", http_conn_id="kong_orders").run("/orders/hook")
        return str(response.json()["consumer"])

    hook_request()
