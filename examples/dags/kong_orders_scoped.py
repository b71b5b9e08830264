"""Least privilege per task: one connection, each task's token scoped to what that task does.

The `kong_orders_rw` connection's ``kong_auth`` block has the read scope and a ``task_scopes`` entry that gives
`post_orders` the write scope too (docs/flows.md). `post_orders_unscoped` has no entry: its token may only read,
so Kong refuses its write with 403 and the task fails, as it should.
"""

from __future__ import annotations

import json

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

with DAG(dag_id="kong_orders_scoped", schedule=None, default_args={"retries": 0}):
    HttpOperator(task_id="get_orders", http_conn_id="kong_orders_rw", endpoint="/orders", method="GET")
    for task_id in ("post_orders", "post_orders_unscoped"):
        HttpOperator(
            task_id=task_id,
            http_conn_id="kong_orders_rw",
            endpoint="/write/orders",
            method="POST",
            data=json.dumps({"sku": "A-1", "quantity": 2}),
            headers={"Content-Type": "application/json"},
        )
