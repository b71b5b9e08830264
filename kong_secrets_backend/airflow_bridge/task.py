"""The Airflow task a resolution happens in, if any (dag_id, task_id, run_id, try number).

Read from the task SDK's context stack, which Airflow fills while an operator executes. Outside a
task (the CLI, the scheduler, a triggerer without context) there is none.
"""

from __future__ import annotations

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
        return None
    try:
        return _identity(_CURRENT_CONTEXT[-1])
    except Exception:
        return None


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
