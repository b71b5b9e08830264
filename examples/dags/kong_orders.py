"""Fetch the orders through the gateway. Nothing here is about auth: the `kong_orders` connection carries it."""

from __future__ import annotations

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

with DAG(dag_id="kong_orders", schedule=None):
    HttpOperator(
        task_id="get_orders",
        http_conn_id="kong_orders",
        endpoint="/orders",
        method="GET",
        log_response=True,
    )
