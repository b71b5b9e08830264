"""Correlation headers: W3C traceparent from the active OpenTelemetry span, X-Airflow-* from the running task."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from kong_secrets_backend.airflow_bridge.task import TaskIdentity, current_task, task_override
from kong_secrets_backend.airflow_bridge.trace_headers import correlation_headers, current_traceparent
from kong_secrets_backend.connection import kong_conn_value
from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings import parse_backend_kwargs

TASK = TaskIdentity(
    dag_id="orders_daily", task_id="get_orders", run_id="scheduled__2025-01-01T00:00:00+00:00", try_number=2
)


@pytest.fixture
def span() -> Iterator[object]:
    """A real, sampled span from the OpenTelemetry SDK (a local provider: the global one is left alone)."""
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("task") as active:
        yield active


def test_traceparent_is_the_active_spans_context_in_w3c_format(span: object) -> None:
    ctx = span.get_span_context()  # type: ignore[attr-defined]
    flags = int(ctx.trace_flags)  # sampled (0x01), and the SDK's ids are random (0x02, Trace Context level 2)
    assert flags & 0x01
    assert correlation_headers() == {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"}


def test_no_traceparent_without_an_active_span() -> None:
    assert current_traceparent() is None
    assert correlation_headers() == {}


def test_opentelemetry_is_not_imported_when_nobody_else_did(span: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A span can only be active if its API was imported; if it is not in sys.modules, nothing is looked up."""
    monkeypatch.delitem(sys.modules, "opentelemetry.trace")
    assert current_traceparent() is None


def test_task_headers_carry_the_running_tasks_identity() -> None:
    with task_override(TASK):
        assert correlation_headers() == {
            "X-Airflow-Dag-Id": "orders_daily",
            "X-Airflow-Task-Id": "get_orders",
            "X-Airflow-Run-Id": "scheduled__2025-01-01T00:00:00+00:00",
            "X-Airflow-Try-Number": "2",
        }
    assert current_task() is None


def test_task_header_values_cannot_break_a_header() -> None:
    hostile = TaskIdentity(dag_id="données", task_id="a b", run_id="x\r\nX-Injected: 1", try_number=None)
    with task_override(hostile):
        headers = correlation_headers()
    assert headers == {
        "X-Airflow-Dag-Id": "donn%C3%A9es",
        "X-Airflow-Task-Id": "a%20b",
        "X-Airflow-Run-Id": "x%0D%0AX-Injected:%201",
    }
    assert all(v.isascii() and v.isprintable() and " " not in v for v in headers.values())


def test_each_kind_of_header_has_its_switch(span: object) -> None:
    with task_override(TASK):
        assert set(correlation_headers(traceparent=False)) == {
            "X-Airflow-Dag-Id",
            "X-Airflow-Task-Id",
            "X-Airflow-Run-Id",
            "X-Airflow-Try-Number",
        }
        assert set(correlation_headers(task_headers=False)) == {"traceparent"}
        assert correlation_headers(traceparent=False, task_headers=False) == {}


def test_backend_kwargs_switch_the_headers_and_refuse_non_booleans() -> None:
    base = {"url": "http://127.0.0.1:8200", "token": "t"}
    assert (parse_backend_kwargs(base).task_headers, parse_backend_kwargs(base).traceparent) == (True, True)
    off = parse_backend_kwargs({**base, "task_headers": False, "traceparent": "false"})
    assert (off.task_headers, off.traceparent) == (False, False)
    with pytest.raises(ConfigError, match="task_headers must be true or false"):
        parse_backend_kwargs({**base, "task_headers": "sometimes"})


def test_correlation_headers_replace_same_named_extras_but_never_the_auth_header() -> None:
    secret = {"conn_type": "http", "host": "kong", "extra": {"TraceParent": "stale", "Accept": "application/json"}}
    value = kong_conn_value(
        secret,
        header_name="Authorization",
        header_value="Bearer abc",
        conn_id="c",
        extra_headers={"traceparent": "00-1-2-01", "authorization": "nope", "X-Airflow-Dag-Id": "d"},
    )
    extra = json.loads(value)["extra"]
    assert extra == {
        "Accept": "application/json",
        "Authorization": "Bearer abc",
        "traceparent": "00-1-2-01",
        "X-Airflow-Dag-Id": "d",
    }
