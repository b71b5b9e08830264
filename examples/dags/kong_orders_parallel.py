"""Many tasks at once on one connection: `kong_orders_parallel` (six tasks) and `kong_orders_fleet` (eight, for a
Celery fleet). Each task runs in its own process, resolves `kong_orders` there and calls the API through Kong.

With ``token_cache: "file"`` the processes of one host share one token; with a ``redis://`` URL, the whole fleet
does: the identity provider sees one token request per run, not one per task.
"""

from __future__ import annotations

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

for dag_id, width in (("kong_orders_parallel", 6), ("kong_orders_fleet", 8)):
    with DAG(dag_id=dag_id, schedule=None, max_active_tasks=width, default_args={"retries": 0}):
        for index in range(width):
            HttpOperator(
                task_id=f"get_orders_{index}",
                http_conn_id="kong_orders",
                endpoint="/orders",
                method="GET",
                log_response=True,
            )
