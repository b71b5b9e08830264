"""The per-backend Connection memo and the parsed-secret record cache (both on the hot path)."""

from __future__ import annotations

import json

from airflow.sdk.definitions.connection import Connection

from kong_secrets_backend.airflow_bridge.connections import ConnectionMemo

VALUE = json.dumps({"conn_type": "http", "host": "kong.example.com", "extra": {"Authorization": "Bearer tok-1"}})


def test_an_unchanged_value_is_copied_not_parsed_and_callers_never_share_an_object() -> None:
    memo, builds = ConnectionMemo(), []

    def build() -> Connection:
        builds.append(1)
        return Connection.from_json(VALUE, conn_id="c")

    first = memo.connection("c", None, VALUE, Connection, build)
    second = memo.connection("c", None, VALUE, Connection, build)
    assert len(builds) == 1
    assert first is not second and first == second == Connection.from_json(VALUE, conn_id="c")
    first.host = "changed-by-a-caller"
    assert memo.connection("c", None, VALUE, Connection, build).host == "kong.example.com"


def test_a_new_value_or_another_class_is_built_again() -> None:
    memo, builds = ConnectionMemo(), []

    def build(value: str) -> Connection:
        builds.append(value)
        return Connection.from_json(value, conn_id="c")

    memo.connection("c", None, VALUE, Connection, lambda: build(VALUE))
    new_value = VALUE.replace("tok-1", "tok-2")
    assert memo.connection("c", None, new_value, Connection, lambda: build(new_value)).extra_dejson == {
        "Authorization": "Bearer tok-2"
    }
    assert len(builds) == 2


def test_classes_that_are_not_attrs_are_never_kept() -> None:
    class OrmLike:
        pass

    memo, built = ConnectionMemo(), []
    for _ in range(2):
        built.append(memo.connection("c", None, VALUE, OrmLike, OrmLike))
    assert built[0] is not built[1] and memo._built == {}
