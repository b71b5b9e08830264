"""Resolve as a task of a given DAG would: what Airflow puts on its task context stack while a task runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class _TI:
    def __init__(self, dag_id: str, try_number: int, task_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, "manual__1", -1
        self.try_number = try_number


@contextmanager
def task_of(dag_id: str, try_number: int = 1, task_id: str = "call_kong") -> Iterator[None]:
    """Resolutions inside the block are those of task ``task_id`` of ``dag_id`` (its try ``try_number``)."""
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT

    _CURRENT_CONTEXT.append({"ti": _TI(dag_id, try_number, task_id)})  # type: ignore[arg-type]
    try:
        yield
    finally:
        _CURRENT_CONTEXT.pop()
