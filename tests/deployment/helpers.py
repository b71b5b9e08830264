"""What the deployment tests share: the DAG files, logging levels, the gateway's view of a run, the leak check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack.airflow import EXAMPLE_DAGS
from devstack.deployment import Deployment, RunResult
from devstack.stack import Stack
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import LEAK_SCAN_LOGGING

DAG_FILES = [EXAMPLE_DAGS / "kong_orders_parallel.py", EXAMPLE_DAGS / "kong_orders_deferrable.py"]
CLIENT = "airflow-orders"  # the IdP client behind the kong_orders connection (Stack.kong_connection())


@dataclass
class GatewayView:
    """What the gateway's upstream received while the block ran, and how many tokens the IdP issued."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    idp_token_requests: int = 0

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
    def task_ids(self) -> list[str | None]:
        return sorted(r["headers"].get("x-airflow-task-id", "") for r in self.requests)

    def user_agents(self) -> list[str]:
        return [r["headers"].get("user-agent", "") for r in self.requests]


@contextmanager
def observed(stack: Stack) -> Iterator[GatewayView]:
    """Reset the IdP's counters, then collect what the gateway and the IdP saw until the block ends."""
    stack.idp.reset_counts()
    before = len(stack.gateway.received())
    view = GatewayView()
    yield view
    view.requests = stack.gateway.received()[before:]
    view.idp_token_requests = stack.idp.token_requests(CLIENT)


def assert_run_ok(dep: Deployment, result: RunResult) -> None:
    assert result.ok, f"{result.state} {result.task_states}\n{dep.task_logs(result.dag_id, result.run_id)[-6000:]}"


def assert_no_leaks(stack: Stack, dep: Deployment, result: RunResult, view: GatewayView, *extra: str) -> None:
    """Neither the run's task logs nor any component's log holds a planted secret or a token the gateway took."""
    text = dep.task_logs(result.dag_id, result.run_id) + dep.component_logs()
    assert_no_secrets(text, [*stack.planted_secrets(), *dep.planted, *view.tokens, *extra])


__all__ = ["CLIENT", "DAG_FILES", "LEAK_SCAN_LOGGING", "GatewayView", "assert_no_leaks", "assert_run_ok", "observed"]
