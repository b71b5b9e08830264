"""The audit trail on the real stack: one JSON record per mint and per first use of a token by a task try."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection
from opentelemetry.sdk.trace import TracerProvider

from devstack.stack import ORDERS_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.audit import FIELDS
from kong_secrets_backend.airflow_bridge.task import TaskIdentity, task_override
from tests.conftest import assert_no_secrets

pytestmark = pytest.mark.usefixtures("fresh_process_state")

TASK = TaskIdentity(dag_id="orders_daily", task_id="get_orders", run_id="manual__1", try_number=1)


def backend(stack: Stack) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs())
    b._set_connection_class(Connection)
    return b


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "kong_secrets_backend.audit"]


def new_conn_id() -> str:
    return f"audit_{uuid.uuid4().hex[:10]}"


def test_a_cold_mint_inside_a_task_gives_mint_then_use_with_every_field(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    tracer = TracerProvider().get_tracer("tests")
    with (
        caplog.at_level(logging.INFO, logger="kong_secrets_backend.audit"),
        tracer.start_as_current_span("worker.get_orders") as span,
        task_override(TASK),
    ):
        conn = backend(stack).get_connection(cid)
        backend(stack).get_connection(cid)  # the same try again: no new record
    assert conn is not None
    records = audit_records(caplog)
    assert [r["event"] for r in records] == ["mint", "use"]
    mint, use = records
    assert tuple(mint) == FIELDS and {k: v for k, v in mint.items() if k != "event"} == {
        k: v for k, v in use.items() if k != "event"
    }
    token = conn.extra_dejson["Authorization"].removeprefix("Bearer ")
    assert (mint["conn_id"], mint["dag_id"], mint["task_id"], mint["run_id"]) == (
        cid,
        "orders_daily",
        "get_orders",
        "manual__1",
    )
    assert (mint["try_number"], mint["map_index"], mint["flow"]) == (1, None, "client_credentials")
    assert mint["consumer"] == "airflow-orders" and set(mint["scope"].split()) == set(ORDERS_SCOPE.split())
    assert mint["audience"] and mint["expires_at"].endswith("Z") and mint["token_id"]
    assert mint["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), token])


def test_a_token_reused_by_another_task_try_is_one_use_record_and_no_mint(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    backend(stack).get_connection(cid)  # minted outside any task: a mint record, no use
    assert [r["event"] for r in audit_records(caplog)] == ["mint"]
    caplog.clear()
    other = TaskIdentity(dag_id="orders_daily", task_id="post_orders", run_id="manual__1", try_number=1, map_index=3)
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend.audit"), task_override(other):
        backend(stack).get_connection(cid)
    records = audit_records(caplog)
    assert [r["event"] for r in records] == ["use"]
    assert (records[0]["task_id"], records[0]["map_index"], records[0]["trace_id"]) == ("post_orders", 3, None)


def test_kong_jwt_tokens_carry_a_random_jti_that_is_their_token_id(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.flow_connection("kong_jwt"))
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend.audit"), task_override(TASK):
        backend(stack).get_connection(cid)
    mint = audit_records(caplog)[0]
    assert mint["flow"] == "kong_jwt" and mint["consumer"] and len(mint["token_id"]) == 32


def test_key_auth_records_name_the_consumer_field_and_never_the_key(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.flow_connection("key_auth", consumer="airflow-keys"))
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend.audit"), task_override(TASK):
        backend(stack).get_connection(cid)
    records = audit_records(caplog)
    assert [r["event"] for r in records] == ["use"]  # nothing is minted for a static key
    assert (records[0]["consumer"], records[0]["token_id"], records[0]["expires_at"]) == ("airflow-keys", None, None)
    assert stack.flow_secrets.api_key not in caplog.text
