"""The Airflow task a resolution happens in, if any (dag_id, task_id, run_id, try number).

Read from the task SDK's context stack, which Airflow fills while an operator executes. Outside a
task (the CLI, the scheduler, a triggerer without context) there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskIdentity:
    dag_id: str
    task_id: str
    run_id: str | None
    try_number: int | None
    map_index: int | None = None


def current_task() -> TaskIdentity | None:
    """The running task's identity, or None outside a task. Never raises."""
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
