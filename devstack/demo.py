"""The demo: the real local stack and a real Airflow deployment running unchanged HttpOperator DAGs through the
gateway, triggered with `airflow dags trigger` (devstack/deployment.py), with least privilege per task and per DAG.

scripts/demo                     (or: .venv/bin/python -m devstack.demo)
scripts/demo --dags-test         the earlier, shorter demo: one `airflow dags test` of examples/dags/kong_orders.py
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devstack.airflow import EXAMPLE_DAGS, dags_test, prepare_airflow
from devstack.deployment import Deployment, RunResult, running_deployment
from devstack.stack import ORDERS_SCOPE, ORDERS_WRITE_SCOPE, Stack, running_stack

AUDIT_LOGGER = "kong_secrets_backend.audit"
CONSUMERS = "kong-credentials/consumers"  # a Kong consumer credential per DAG: <CONSUMERS>/<dag_id>
DEMO_RUNS = ("kong_orders_scoped", "orders_billing", "orders_shipping", "orders_unregistered")


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def say(mark: str, text: str) -> None:
    print(f"  {mark} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return dags_test_demo() if "--dags-test" in args else deployment_demo()


def _store_least_privilege_secrets(stack: Stack) -> None:
    """kong_orders_rw: the write scope for post_orders only (task_scopes); a consumer credential per DAG."""
    write = f"{ORDERS_SCOPE} {ORDERS_WRITE_SCOPE}"
    task_scopes = [{"dags": ["kong_orders_scoped"], "tasks": ["post_orders"], "scope": write}]
    stack.put("connections/kong_orders_rw", stack.kong_connection("airflow-writer", task_scopes=task_scopes))
    stack.put(f"{CONSUMERS}/orders_billing", stack.kong_auth("airflow-orders"))
    stack.put(f"{CONSUMERS}/orders_shipping", stack.kong_auth("airflow-post"))
    stack.put("connections/kong_orders_per_dag", stack.connection({"credentials_path": f"{CONSUMERS}/{{dag_id}}"}))


def _why_failed(dep: Deployment, result: RunResult, task_id: str) -> str:
    """The exception a task failed with, from its own log (the task runner's "Task failed with exception")."""
    for name, entries in dep.log_events(result.dag_id, result.run_id).items():
        if not name.startswith(f"task_id={task_id}/"):
            continue
        for entry in entries:
            detail = entry.get("error_detail")
            if entry.get("event") == "Task failed with exception" and isinstance(detail, list) and detail:
                return f"{detail[0].get('exc_type')}: {detail[0].get('exc_value')}"
    return "see its task log"


def deployment_demo() -> int:
    print("kong-secrets-backend demo: a real Airflow deployment, Kong credentials in Vault, least privilege\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kong-demo-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        say("✓", f"OpenBao {stack.bao.url}, oidc-provider {stack.idp.issuer}, HAProxy as Kong {stack.gateway.url}")
        _store_least_privilege_secrets(stack)
        say("✓", "Stored connections/kong_orders_rw (task_scopes: post_orders may write) and kong_orders_per_dag")
        say(" ", f"(credentials_path {CONSUMERS}/{{dag_id}}: billing and shipping have a consumer, unregistered not)")
        dags = [EXAMPLE_DAGS / "kong_orders_scoped.py", EXAMPLE_DAGS / "kong_orders_per_dag.py"]
        with running_deployment(
            stack,
            Path(tmp) / "airflow",
            executor="local",
            secrets_section="workers",
            backend_kwargs=stack.backend_kwargs(token_cache="file"),
            dags=dags,
        ) as dep:
            say(
                "✓",
                f"Airflow: api-server {dep.api_url}, scheduler (LocalExecutor), dag-processor, triggerer: "
                f"up in {dep.startup_seconds:.0f}s",
            )
            say("→", f"airflow dags trigger {', '.join(DEMO_RUNS)}")
            stack.idp.reset_counts()
            seen_before = len(stack.gateway.received())
            runs = {dag_id: dep.trigger(dag_id) for dag_id in DEMO_RUNS}
            results = {dag_id: dep.wait(dag_id, run_id, timeout=150) for dag_id, run_id in runs.items()}
            return _report(stack, dep, results, stack.gateway.received()[seen_before:], started)


def _report(
    stack: Stack, dep: Deployment, results: dict[str, RunResult], received: list[dict[str, Any]], started: float
) -> int:
    seen = {
        (r["headers"].get("x-airflow-dag-id"), r["headers"].get("x-airflow-task-id")): r["headers"] for r in received
    }
    print(f"\n    {'task':<42} {'state':<8} {'consumer (Kong)':<16} {'scope (Kong)':<26} trace id")
    for dag_id, result in results.items():
        for task_id, task in sorted(result.tasks.items()):
            headers = seen.get((dag_id, task_id))
            name = f"{dag_id}.{task_id}"
            if headers is None:
                print(f"    {name:<42} {task.state or '-':<8} {_why_failed(dep, result, task_id)}")
                continue
            trace = headers.get("traceparent", "").split("-")
            print(
                f"    {name:<42} {task.state or '-':<8} {headers.get('x-consumer-username', '-'):<16} "
                f"{headers.get('x-authenticated-scope', '-'):<26} {trace[1] if len(trace) == 4 else '-'}"
            )
    print()
    say("✓", f"Token requests at the IdP: {stack.idp.token_requests()} (one per consumer and scope)")
    audit = [
        json.loads(entry["event"])
        for result in results.values()
        for entries in dep.log_events(result.dag_id, result.run_id, AUDIT_LOGGER).values()
        for entry in entries
    ]
    say("✓", f"Audit records in the task logs: {len(audit)} ({sum(r['event'] == 'mint' for r in audit)} mints), e.g.")
    example = next((r for r in audit if r["event"] == "use" and r["task_id"] == "post_orders"), None)
    if example is not None:
        print(f"        {json.dumps(example)}")
    tokens = [h.get("authorization", "").removeprefix("Bearer ") for h in (r["headers"] for r in received)]
    text = dep.component_logs() + "".join(dep.task_logs(r.dag_id, r.run_id) for r in results.values())
    leaked = [s for s in [*stack.planted_secrets(), *dep.planted, *tokens] if s and s in text]
    say(
        "✓" if not leaked else "✗",
        f"Client secrets, Vault credentials and tokens in every task and component log: "
        f"{'none' if not leaked else len(leaked)} ({text.count(chr(10))} lines scanned)",
    )
    print(f"\nDeployment and stack stopped ({time.monotonic() - started:.0f}s). The DAGs are in examples/dags/.")
    return 0 if not leaked else 1


def dags_test_demo() -> int:
    print("kong-secrets-backend demo: Vault-held Kong credential -> token -> unchanged HttpOperator DAG\n")
    with tempfile.TemporaryDirectory(prefix="kong-demo-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        say("✓", f"OpenBao dev server      {stack.bao.url}  (AppRole 'airflow', read-only policy)")
        say("✓", f"Identity provider       {stack.idp.issuer}  (panva oidc-provider, client_credentials, RS256 JWTs)")
        say("✓", f"Gateway                 {stack.gateway.url}  (HAProxy as Kong openid-connect + rate-limiting)")
        secret = stack.kong_connection()
        stack.put("connections/kong_orders", secret)
        shown = {**secret, "kong_auth": {**secret["kong_auth"], "client_secret": "***"}}
        say("✓", "Stored secret/connections/kong_orders:")
        for line in json.dumps(shown, indent=2).splitlines():
            print(f"        {line}")
        af = prepare_airflow(
            Path(tmp),
            backend="kong_secrets_backend.KongSecretsBackend",
            backend_kwargs=stack.backend_kwargs(),
            dags_folder=EXAMPLE_DAGS,
        )
        say("→", "airflow dags test kong_orders   (examples/dags/kong_orders.py: a plain HttpOperator, no auth code)")
        stack.idp.reset_counts()
        result = dags_test(af, "kong_orders")
        if not result.ok:
            say("✗", f"the DAG run failed ({result.dag_run_state}); last output:")
            print(result.all_output[-4000:])
            return 1
        say("✓", f"DAG run succeeded in {result.duration:.1f}s (task states: {result.task_states})")
        request = stack.gateway.received()[-1]
        token = request["headers"]["authorization"].removeprefix("Bearer ")
        claims = _claims(token)
        say(
            "✓",
            f"Gateway verified the token and forwarded GET {request['path']} as consumer "
            f"{request['headers']['x-consumer-username']!r}",
        )
        exp = int(claims["exp"])  # type: ignore[call-overload]
        say(
            " ",
            f"token claims: sub={claims['sub']} aud={claims['aud']} scope={claims['scope']} "
            f"expires in {exp - int(time.time())}s",
        )
        say("✓", f"Token requests at the IdP for this run: {stack.idp.token_requests()}")
        leaked = [s for s in [*stack.planted_secrets(), token] if s in result.all_output]
        lines = result.all_output.count("\n")
        say(
            "✓" if not leaked else "✗",
            f"Client secret, Vault credentials and token in Airflow's output: "
            f"{'none' if not leaked else len(leaked)} ({lines} lines scanned)",
        )
        print("\nStack stopped. The example DAG and the secret schema are in examples/ and docs/flows.md.")
        return 0 if not leaked else 1


if __name__ == "__main__":
    sys.exit(main())
