"""A deferrable HttpOperator: the request is made by the triggerer (HttpTrigger and its HttpAsyncHook), which
resolves `kong_orders` itself. The hook resolves the connection once per deferral: a task that needs a fresh
token defers again.
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
        deferrable=True,
    )
