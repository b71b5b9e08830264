"""task_scopes parsing and matching: pure, every bad entry refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from kong_secrets_backend.airflow_bridge.task import TaskIdentity
from kong_secrets_backend.connection import KongAuth, TaskScope, parse_task_scopes, scope_set
from kong_secrets_backend.errors import SecretFormatError


def task(dag_id: str, task_id: str) -> TaskIdentity:
    return TaskIdentity(dag_id=dag_id, task_id=task_id, run_id="r", try_number=1)


def test_entries_default_to_every_dag_and_task_and_normalise_their_scope() -> None:
    [entry] = parse_task_scopes([{"scope": ["orders:write", "orders:read"]}])
    assert entry == TaskScope(scope="orders:write orders:read", dags=("*",), tasks=("*",))


def test_the_first_matching_entry_gives_the_scope_else_the_blocks() -> None:
    class Credential:
        scope = "orders:read"

    auth = KongAuth(
        credential=Credential(),  # type: ignore[arg-type]
        task_scopes=parse_task_scopes(
            [
                {"dags": ["orders_*"], "tasks": ["post_*"], "scope": "orders:write"},
                {"tasks": ["post_orders"], "scope": "admin"},
            ]
        ),
    )
    assert auth.scope_for(task("orders_daily", "post_orders")) == "orders:write"
    assert auth.scope_for(task("billing", "post_orders")) == "admin"
    assert auth.scope_for(task("billing", "get_orders")) == "orders:read"
    assert auth.scope_for(None) == "orders:read"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ([], "task_scopes must be a non-empty list"),
        ("orders:write", "task_scopes must be a non-empty list"),
        (["orders:write"], r"task_scopes\[0\] must be an object"),
        ([{"scope": ""}], r"task_scopes\[0\]\.scope"),
        ([{"scope": "a", "dags": []}], r"task_scopes\[0\]\.dags"),
        ([{"scope": "a", "tasks": [1]}], r"task_scopes\[0\]\.tasks"),
        ([{"scope": "a"}, {"scope": "b", "role": "x"}], r"task_scopes\[1\] has unknown fields: role"),
    ],
)
def test_a_bad_entry_is_refused_by_name(value: Any, named: str) -> None:
    with pytest.raises(SecretFormatError, match=named):
        parse_task_scopes(value)


def test_scopes_compare_as_sets() -> None:
    assert scope_set("b a") == scope_set("a  b") and scope_set(None) == frozenset()
