"""Least privilege per task and per DAG on the real stack: task_scopes, and a Kong consumer per DAG."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.connection import Connection

from devstack.stack import ORDERS_SCOPE, ORDERS_WRITE_ROUTE, ORDERS_WRITE_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.task import TaskIdentity, task_override
from kong_secrets_backend.errors import KongAuthError
from kong_secrets_backend.tokens import jwt_parts

pytestmark = pytest.mark.usefixtures("fresh_process_state")

WRITE = f"{ORDERS_SCOPE} {ORDERS_WRITE_SCOPE}"
TASK_SCOPES = [{"dags": ["orders_*"], "tasks": ["post_*"], "scope": WRITE}]


def backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs(**extra))
    b._set_connection_class(Connection)
    return b


def task(task_id: str, dag_id: str = "orders_daily") -> TaskIdentity:
    return TaskIdentity(dag_id=dag_id, task_id=task_id, run_id="manual__1", try_number=1)


def resolve(stack: Stack, cid: str, identity: TaskIdentity | None) -> Connection:
    if identity is None:
        conn = backend(stack).get_connection(cid)
    else:
        with task_override(identity):
            conn = backend(stack).get_connection(cid)
    assert conn is not None
    return conn


def token_scope(conn: Connection) -> set[str]:
    parts = jwt_parts(conn.extra_dejson["Authorization"].removeprefix("Bearer "))
    assert parts is not None
    return set(parts[1]["scope"].split())


def call(stack: Stack, conn: Connection, path: str) -> requests.Response:
    return requests.post(f"{stack.gateway.url}{path}", headers=dict(conn.extra_dejson), timeout=5)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_tasks_get_their_own_scope_and_tasks_with_equal_scopes_share_one_token(stack: Stack) -> None:
    cid = new_id("scoped")
    stack.put(f"connections/{cid}", stack.kong_connection("airflow-writer", task_scopes=TASK_SCOPES))
    stack.idp.reset_counts()
    get = resolve(stack, cid, task("get_orders"))
    post = resolve(stack, cid, task("post_orders"))
    refund = resolve(stack, cid, task("post_refunds"))
    other_dag = resolve(stack, cid, task("post_orders", dag_id="billing"))
    assert token_scope(get) == {ORDERS_SCOPE} and token_scope(other_dag) == {ORDERS_SCOPE}
    assert token_scope(post) == token_scope(refund) == set(WRITE.split())
    assert post.extra_dejson["Authorization"] == refund.extra_dejson["Authorization"]  # one token per scope
    assert get.extra_dejson["Authorization"] == other_dag.extra_dejson["Authorization"]
    assert stack.idp.token_requests() == 2  # one per distinct scope
    assert call(stack, post, ORDERS_WRITE_ROUTE).status_code == 200
    assert call(stack, get, ORDERS_WRITE_ROUTE).status_code == 403  # the read-only task cannot write
    assert call(stack, get, "/orders").status_code == 200


def test_outside_any_task_the_block_scope_applies(stack: Stack) -> None:
    cid = new_id("scoped")
    stack.put(f"connections/{cid}", stack.kong_connection("airflow-writer", task_scopes=TASK_SCOPES))
    assert token_scope(resolve(stack, cid, None)) == {ORDERS_SCOPE}


def test_task_scopes_on_a_flow_that_requests_no_scope_are_refused_by_name(stack: Stack) -> None:
    cid = new_id("scoped")
    stack.put(f"connections/{cid}", stack.flow_connection("kong_jwt", task_scopes=TASK_SCOPES))
    with pytest.raises(KongAuthError, match="task_scopes"):
        backend(stack).get_conn_value(cid)


def test_a_task_scope_wider_than_the_shared_credentials_is_refused(stack: Stack) -> None:
    cid, path = new_id("scoped"), f"kong-credentials/{new_id('writer')}"
    stack.put(path, stack.kong_auth("airflow-orders"))  # this credential may only read
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path, "task_scopes": TASK_SCOPES}))
    with task_override(task("post_orders")), pytest.raises(KongAuthError, match=r"task_scopes\[0\]\.scope"):
        backend(stack).get_conn_value(cid)


def test_each_dag_reaches_kong_as_its_own_consumer_and_a_dag_without_one_is_refused(stack: Stack) -> None:
    cid, base = new_id("per_dag"), f"kong-credentials/{new_id('consumers')}"
    stack.put(f"{base}/orders_daily", stack.kong_auth("airflow-orders"))
    stack.put(f"{base}/billing", stack.kong_auth("airflow-post"))
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": f"{base}/{{dag_id}}"}))
    for dag_id, consumer in (("orders_daily", "airflow-orders"), ("billing", "airflow-post")):
        conn = resolve(stack, cid, task("get_orders", dag_id=dag_id))
        resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
        assert resp.status_code == 200
        assert stack.gateway.received()[-1]["headers"]["x-consumer-username"] == consumer
    with task_override(task("get_orders", dag_id="reports")), pytest.raises(Exception, match=f"{base}/reports"):
        backend(stack).get_conn_value(cid)
    with pytest.raises(Exception, match="outside any task"):
        backend(stack).get_conn_value(cid)


def test_a_dag_id_that_would_leave_the_path_never_becomes_one(stack: Stack) -> None:
    cid, base = new_id("per_dag"), f"kong-credentials/{new_id('consumers')}"
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": f"{base}/{{dag_id}}"}))
    with task_override(task("t", dag_id="../connections")), pytest.raises(KongAuthError, match="dag_id"):
        backend(stack).get_conn_value(cid)
