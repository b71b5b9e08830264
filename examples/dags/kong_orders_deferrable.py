"""A deferrable HttpOperator: the request is made by the triggerer (HttpTrigger and its HttpAsyncHook), which
resolves `kong_orders` itself, as the deferred task. The hook resolves the connection once per deferral: a task
that needs a fresh token defers again.

The local test API answers after `delay` seconds (``?delay=5``), as a slow API would. A trigger that fires within
a second or two of its deferral can meet a scheduler race on Airflow 3.2 and 3.3 (the executor's stale "success"
for the deferral exit is applied to the resumed task, which is then failed: apache/airflow#67287).
"""

from __future__ import annotations

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

with DAG(dag_id="kong_orders_deferrable", schedule=None, default_args={"retries": 0}):
    HttpOperator(
        task_id="get_orders_deferred",
        http_conn_id="kong_orders",
        endpoint="/orders",
        method="GET",
        data={"delay": 5},  # sent as the query of a GET
        deferrable=True,
    )
