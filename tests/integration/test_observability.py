"""Observability on the real stack: StatsD metrics and the mint log line from real resolutions, and correlation
headers (traceparent, X-Airflow-*) that the upstream behind the gateway receives."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.connection import Connection
from opentelemetry.sdk.trace import TracerProvider

from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.task import TaskIdentity, task_override
from kong_secrets_backend.errors import KongAuthError
from tests.conftest import assert_no_secrets
from tests.statsd_listener import statsd_listener

pytestmark = pytest.mark.usefixtures("fresh_process_state")


def backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs(**extra))
    b._set_connection_class(Connection)
    return b


def new_conn_id() -> str:
    return f"kong_{uuid.uuid4().hex[:10]}"


def call_through_gateway(stack: Stack, conn: Connection) -> dict[str, str]:
    """Send the connection's extras as headers (what HttpHook does); return the headers the upstream received."""
    resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
    assert resp.status_code == 200, resp.text
    return stack.gateway.received()[-1]["headers"]


def test_real_resolutions_emit_mint_cache_hit_and_error_metrics_and_one_info_line_per_mint(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = new_conn_id(), new_conn_id()
    stack.put(f"connections/{good}", stack.kong_connection())
    stack.put(f"connections/{bad}", stack.kong_connection(client_secret="not-the-secret-" + uuid.uuid4().hex))
    with statsd_listener(monkeypatch) as received, caplog.at_level(logging.INFO, logger="kong_secrets_backend"):
        b = backend(stack)
        conn = b.get_connection(good)  # mint
        assert b.get_connection(good) is not None  # cache hit
        with pytest.raises(KongAuthError):
            b.get_connection(bad)
        packets = received(4)
    assert "airflow.kong_secrets_backend.mints:1|c" in packets
    assert any(p.startswith("airflow.kong_secrets_backend.mint_duration:") and p.endswith("|ms") for p in packets)
    assert "airflow.kong_secrets_backend.cache_hits:1|c" in packets
    assert "airflow.kong_secrets_backend.errors.identity_provider_refused:1|c" in packets

    mints = [r.getMessage() for r in caplog.records if "minted a" in r.getMessage()]
    assert len(mints) == 1
    assert f"minted a client_credentials token for conn_id {good}" in mints[0]
    assert "expires in 300s" in mints[0] and f"kid {stack.idp.kid}" in mints[0]
    assert conn is not None
    token = conn.extra_dejson["Authorization"].removeprefix("Bearer ")
    assert_no_secrets(caplog.text + "\n".join(packets), [*stack.planted_secrets(), token])


def test_the_upstream_receives_the_traceparent_of_the_active_span_and_the_tasks_identity(stack: Stack) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    tracer = TracerProvider().get_tracer("tests")
    task = TaskIdentity(dag_id="orders_daily", task_id="get_orders", run_id="manual__1", try_number=3)
    with tracer.start_as_current_span("worker.get_orders") as span, task_override(task):
        conn = backend(stack).get_connection(cid)
    assert conn is not None
    headers = call_through_gateway(stack, conn)
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    assert (headers["x-airflow-dag-id"], headers["x-airflow-task-id"]) == ("orders_daily", "get_orders")
    assert (headers["x-airflow-run-id"], headers["x-airflow-try-number"]) == ("manual__1", "3")
    assert headers["x-consumer-username"] == "airflow-orders"  # the auth header is untouched


def test_backend_kwargs_turn_the_correlation_headers_off(stack: Stack) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    tracer = TracerProvider().get_tracer("tests")
    task = TaskIdentity(dag_id="orders_daily", task_id="get_orders", run_id="manual__1", try_number=1)
    with tracer.start_as_current_span("worker.get_orders"), task_override(task):
        conn = backend(stack, task_headers=False, traceparent=False).get_connection(cid)
    assert conn is not None
    headers = call_through_gateway(stack, conn)
    assert "traceparent" not in headers and not any(k.startswith("x-airflow-") for k in headers)
