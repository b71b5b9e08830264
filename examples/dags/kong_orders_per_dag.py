"""A Kong consumer per DAG: three DAGs on one connection, `kong_orders_per_dag`, whose ``kong_auth`` names
``"credentials_path": "kong-credentials/consumers/{dag_id}"``. Each DAG's tasks mint with that DAG's own Kong
consumer credential, so Kong's rate limits and logs are per DAG; a DAG without a credential there
(`orders_unregistered`) is refused, and its log names the missing path.
"""

from __future__ import annotations

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

for dag_id in ("orders_billing", "orders_shipping", "orders_unregistered"):
    with DAG(dag_id=dag_id, schedule=None, default_args={"retries": 0}):
        HttpOperator(task_id="get_orders", http_conn_id="kong_orders_per_dag", endpoint="/orders", method="GET")
