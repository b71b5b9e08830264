"""Correlation headers added to a Kong connection's extras, so the gateway's logs join the task's log.

- ``traceparent`` (W3C Trace Context) from the active OpenTelemetry span, when there is one. Airflow 3.x runs
  every task inside a span (a non-recording one when ``[traces] otel_on`` is off), so the trace id is the
  dag run's. Kong's ``opentelemetry`` plugin continues that trace; its ``correlation-id`` and ``file-log``
  plugins can log the header.
- ``X-Airflow-Dag-Id``, ``X-Airflow-Task-Id``, ``X-Airflow-Run-Id``, ``X-Airflow-Try-Number`` from the running
  task (:func:`kong_secrets_backend.airflow_bridge.task.current_task`); absent outside a task, e.g. in a triggerer.

Both are switched by backend kwargs (``traceparent``, ``task_headers``; default true). Values are percent-encoded
outside visible ASCII so that no task or run id can break a header. Nothing here raises.
"""

from __future__ import annotations

import logging
import sys
from functools import lru_cache
from urllib.parse import quote

from kong_secrets_backend.airflow_bridge.task import TaskIdentity, current_task

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
DAG_ID = "X-Airflow-Dag-Id"
TASK_ID = "X-Airflow-Task-Id"
RUN_ID = "X-Airflow-Run-Id"
TRY_NUMBER = "X-Airflow-Try-Number"
HEADER_NAMES = (TRACEPARENT, DAG_ID, TASK_ID, RUN_ID, TRY_NUMBER)

# RFC 9110 field-vchar without '%' (so that an encoded value can be decoded unambiguously).
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_MAX_VALUE = 512


def correlation_headers(
    *, traceparent: bool = True, task_headers: bool = True, task: TaskIdentity | bool | None = True
) -> dict[str, str]:
    """The headers for this resolution, in a fixed order; ``{}`` when there is nothing to add. ``task`` is the
    running task when the caller has it already (None: outside a task), else it is looked up."""
    headers: dict[str, str] = {}
    if traceparent:
        value = current_traceparent()
        if value:
            headers[TRACEPARENT] = value
    if task_headers:
        if task is True:
            task = current_task()
        if isinstance(task, TaskIdentity):
            headers.update(_task_headers(task))
    return headers


@lru_cache(maxsize=64)
def _task_headers(task: TaskIdentity) -> tuple[tuple[str, str], ...]:
    """The X-Airflow-* headers of a task, encoded once (a task resolves its connections many times)."""
    headers = [(DAG_ID, _header_value(task.dag_id)), (TASK_ID, _header_value(task.task_id))]
    if task.run_id:
        headers.append((RUN_ID, _header_value(task.run_id)))
    if task.try_number is not None:
        headers.append((TRY_NUMBER, _header_value(task.try_number)))
    return tuple(headers)


def current_traceparent() -> str | None:
    """``00-<trace id>-<span id>-<flags>`` of the current OpenTelemetry span, or None.

    OpenTelemetry is not imported here: a span can only be active if something already imported its API.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    try:
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 0xFF:02x}"
    except Exception:  # pragma: no cover - defensive: tracing must never break a resolution
        log.debug("could not read the OpenTelemetry context", exc_info=True)
        return None


def _header_value(value: object) -> str:
    return quote(str(value)[:_MAX_VALUE], safe=_SAFE)


__all__ = ["HEADER_NAMES", "correlation_headers", "current_traceparent"]
