"""``allowed_dags``: which DAGs may resolve a Kong connection.

Patterns are shell-style globs (``fnmatch``, case-sensitive) matched against the dag_id of the running
task. A resolution outside any task, or from a DAG that matches no pattern, is refused; the backend turns
the refusal into Airflow's ``AirflowSecretsBackendAccessDenied``, the one backend exception Airflow lets
through to the task instead of falling back to other backends.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from kong_secrets_backend.airflow_bridge.task import current_task
from kong_secrets_backend.errors import AccessDenied, SecretFormatError


def parse_allowed_dags(value: Any) -> tuple[str, ...] | None:
    """None when the field is absent; else a non-empty tuple of glob patterns."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise SecretFormatError("kong_auth.allowed_dags must be a non-empty list of dag_id patterns")
    return tuple(value)


def check_allowed(patterns: tuple[str, ...], conn_id: str) -> None:
    """Raise AccessDenied unless the running task's dag_id matches one of the patterns."""
    task = current_task()
    if task is None:
        raise AccessDenied(
            f"conn_id {conn_id!r} is restricted by allowed_dags ({', '.join(patterns)}) and this resolution "
            "is outside any task (dag_id: none)"
        )
    if not any(fnmatchcase(task.dag_id, p) for p in patterns):
        raise AccessDenied(
            f"conn_id {conn_id!r} may not be used by dag_id {task.dag_id!r} (allowed_dags: {', '.join(patterns)})"
        )
