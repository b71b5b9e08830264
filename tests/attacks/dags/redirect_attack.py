"""An attacker's gateway route answers 302 to another origin: unchanged HttpOperators (sync and deferrable) call it.

Used by tests/attacks/test_redirects.py (not an example: it is pointed at a redirecting route on purpose). Every
connection is a Kong connection the backend resolves; no task knows about auth or redirects.

- ``*_key``: key_auth, the key in ``apikey``; ``*_custom``: key_auth under a custom ``header_name``;
- ``*_bearer``: client_credentials, ``Authorization: Bearer`` (the one header requests and aiohttp drop);
- ``*_optin``: key_auth whose secret's own extra says ``allow_redirects: true`` (the control: the attack is real);
- ``hook_url``: prints the URL HttpHook builds for a Kong connection stored without ``schema``.
"""

from __future__ import annotations

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG, task

CASES = {
    "key": ("attack_redirect_key", "/moved"),
    "custom": ("attack_redirect_custom", "/moved"),
    "bearer": ("attack_redirect_bearer", "/orders-moved"),
    "optin": ("attack_redirect_optin", "/moved"),
}

with DAG(dag_id="redirect_attack", schedule=None, tags=["attack"], max_active_tasks=2):
    for case, (conn_id, prefix) in CASES.items():
        HttpOperator(task_id=f"sync_{case}", http_conn_id=conn_id, endpoint=f"{prefix}/sync-{case}", method="GET")
        HttpOperator(
            task_id=f"deferred_{case}",
            http_conn_id=conn_id,
            endpoint=f"{prefix}/deferred-{case}",
            method="GET",
            deferrable=True,
        )

    @task
    def hook_url() -> str:
        url = HttpHook(method="GET", http_conn_id="attack_no_schema").url_from_endpoint("/orders")
        print(f"HOOK_URL={url}")
        return str(url)

    hook_url()
