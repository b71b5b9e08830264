"""Fetch the orders through the gateway. Nothing here is about auth: the `kong_orders` connection carries it."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

# Retries that stay inside Kong's rate-limit budget (docs/operations.md): back off at least one window.
# In production also set "pool" to a pool sized to the consumer's limit.
default_args = {
    "retries": 3,
    "retry_delay": timedelta(seconds=60),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

with DAG(dag_id="kong_orders", schedule=None, default_args=default_args):
    HttpOperator(
        task_id="get_orders",
        http_conn_id="kong_orders",
        endpoint="/orders",
        method="GET",
        log_response=True,
    )
