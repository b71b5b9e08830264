"""The Airflow task a resolution happens in, if any (dag_id, task_id, run_id, try number).

Read from the task SDK's context stack, which Airflow fills while an operator executes. In the triggerer
(deferrable operators) there is no such stack: the identity is the deferred task's, read from the log context
the triggerer binds around each trigger, where it binds one (Airflow 3.3 binds dag_id, task_id, run_id,
try_number and map_index; 3.0 binds only the trigger id, so there a trigger's resolution is outside any task).
Outside a task (the CLI, the scheduler) there is none.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskIdentity:
    dag_id: str
    task_id: str
    run_id: str | None
    try_number: int | None
    map_index: int | None = None


# Set by `task_override` (the check command's --dag-id): resolve as if inside that task.
_OVERRIDE: ContextVar[TaskIdentity | None] = ContextVar("kong_secrets_backend_task_override", default=None)


@contextmanager
def task_override(identity: TaskIdentity) -> Iterator[TaskIdentity]:
    """Within this block (this thread / asyncio task), `current_task()` returns ``identity``.

    The seam for tools that resolve outside Airflow's task context, e.g. ``kong-secrets-backend check
    --dag-id``. Not a security boundary: code in the worker could fake Airflow's own context just as well.
    """
    token = _OVERRIDE.set(identity)
    try:
        yield identity
    finally:
        _OVERRIDE.reset(token)


def current_task() -> TaskIdentity | None:
    """The running task's identity (or the `task_override`), or None outside a task. Never raises."""
    override = _OVERRIDE.get()
    if override is not None:
        return override
    try:
        from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT
    except ImportError:  # pragma: no cover - other Airflow layouts
        return None
    if not _CURRENT_CONTEXT:
        return _deferred_task() if _TRIGGERER in sys.modules else None
    try:
        return _identity(_CURRENT_CONTEXT[-1])
    except Exception:
        return None


_TRIGGERER = "airflow.jobs.triggerer_job_runner"


def _deferred_task() -> TaskIdentity | None:
    """In the triggerer: the task whose trigger is running, from the log context bound around the trigger."""
    try:
        from structlog.contextvars import get_contextvars

        bound = get_contextvars()
    except Exception:  # pragma: no cover - structlog is Airflow's own logging
        return None
    dag_id, task_id = bound.get("dag_id"), bound.get("task_id")
    if "trigger_id" not in bound or not isinstance(dag_id, str) or not isinstance(task_id, str):
        return None
    try_number, map_index = bound.get("try_number"), bound.get("map_index")
    return TaskIdentity(
        dag_id=dag_id,
        task_id=task_id,
        run_id=bound.get("run_id") if isinstance(bound.get("run_id"), str) else None,
        try_number=try_number if isinstance(try_number, int) else None,
        map_index=map_index if isinstance(map_index, int) and map_index >= 0 else None,
    )


def _identity(context: Any) -> TaskIdentity | None:
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    map_index = getattr(ti, "map_index", None)
    return TaskIdentity(
        dag_id=str(ti.dag_id),
        task_id=str(ti.task_id),
        run_id=getattr(ti, "run_id", None),
        try_number=getattr(ti, "try_number", None),
        map_index=map_index if isinstance(map_index, int) and map_index >= 0 else None,
    )
