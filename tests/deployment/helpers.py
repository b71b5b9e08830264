"""What the deployment tests share: the DAG files, logging levels, the gateway's view of a run, the leak check."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack.airflow import EXAMPLE_DAGS
from devstack.deployment import Deployment, RunResult
from devstack.stack import Stack
from kong_secrets_backend.airflow_bridge.audit import FIELDS
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import LEAK_SCAN_LOGGING

DAG_FILES = [EXAMPLE_DAGS / "kong_orders_parallel.py", EXAMPLE_DAGS / "kong_orders_deferrable.py"]
LEAST_PRIVILEGE_DAG_FILES = [EXAMPLE_DAGS / "kong_orders_scoped.py", EXAMPLE_DAGS / "kong_orders_per_dag.py"]
CLIENT = "airflow-orders"  # the IdP client behind the kong_orders connection (Stack.kong_connection())
AUDIT_LOGGER = "kong_secrets_backend.audit"


@dataclass
class GatewayView:
    """What the gateway's upstream received while the block ran, and the IdP's token requests per client."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    idp_requests: dict[str, int] = field(default_factory=dict)

    @property
    def idp_token_requests(self) -> int:
        """Token requests of the kong_orders client (`CLIENT`)."""
        return self.idp_requests.get(CLIENT, 0)

    @property
    def tokens(self) -> set[str]:
        return {r["headers"].get("authorization", "").removeprefix("Bearer ") for r in self.requests}

    @property
    def consumers(self) -> set[str | None]:
        return {r["headers"].get("x-consumer-username") for r in self.requests}

    @property
    def trace_ids(self) -> set[str | None]:
        """The trace id of each request's W3C traceparent (None where there was none)."""
        ids = set()
        for r in self.requests:
            parts = r["headers"].get("traceparent", "").split("-")
            ids.add(parts[1] if len(parts) == 4 else None)
        return ids

    @property
    def task_ids(self) -> list[str]:
        return sorted(r["headers"].get("x-airflow-task-id", "") for r in self.requests)

    def user_agents(self) -> list[str]:
        return [r["headers"].get("user-agent", "") for r in self.requests]

    def by_task(self, *names: str) -> dict[str, tuple[str | None, ...]]:
        """X-Airflow-Task-Id -> the given (lower-case) headers of that task's request."""
        return {
            r["headers"].get("x-airflow-task-id", ""): tuple(r["headers"].get(n) for n in names) for r in self.requests
        }


@contextmanager
def observed(stack: Stack, clients: Sequence[str] = (CLIENT,)) -> Iterator[GatewayView]:
    """Reset the IdP's counters, then collect what the gateway and the IdP (for these clients) saw in the block."""
    stack.idp.reset_counts()
    before = len(stack.gateway.received())
    view = GatewayView()
    yield view
    view.requests = stack.gateway.received()[before:]
    view.idp_requests = {client: stack.idp.token_requests(client) for client in clients}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def audit_records(dep: Deployment, result: RunResult) -> dict[str, list[dict[str, Any]]]:
    """Log file of the run (e.g. ``task_id=t/attempt=1.log``, or its ``.trigger.<id>.log``) -> the audit records
    in it, oldest first, each checked to have every documented field in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, entries in dep.log_events(result.dag_id, result.run_id, AUDIT_LOGGER).items():
        found[name] = [json.loads(entry["event"]) for entry in entries]
        for record in found[name]:
            assert tuple(record) == FIELDS, record  # every field, in the documented order
    return found


def assert_run_ok(dep: Deployment, result: RunResult) -> None:
    assert result.ok, f"{result.state} {result.task_states}\n{dep.task_logs(result.dag_id, result.run_id)[-6000:]}"


def assert_no_leaks(stack: Stack, dep: Deployment, result: RunResult, view: GatewayView, *extra: str) -> None:
    """Neither the run's task logs nor any component's log holds a planted secret or a token the gateway took."""
    text = dep.task_logs(result.dag_id, result.run_id) + dep.component_logs()
    assert_no_secrets(text, [*stack.planted_secrets(), *dep.planted, *view.tokens, *extra])


__all__ = [
    "CLIENT",
    "DAG_FILES",
    "LEAST_PRIVILEGE_DAG_FILES",
    "LEAK_SCAN_LOGGING",
    "GatewayView",
    "assert_no_leaks",
    "assert_run_ok",
    "audit_records",
    "jwt_claims",
    "observed",
]
