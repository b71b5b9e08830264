"""Restrictions survive every path: ``allowed_dags`` (the connection's and its shared credential's) holds on every
resolution, including right after each way a new version of a connection is adopted mid-run:

- a KV version change (the secret read again after ``credential_cache_ttl``; a rotation keeps serving the old
  token, under the new version's restrictions);
- an ``invalid_client`` re-read (the IdP refuses the credential held: the source is read again, bypassing caches);
- an AWSPENDING fallback (AWS Secrets Manager mid-rotation: AWSCURRENT is refused, AWSPENDING is tried once).

Each is attacked on the real stack (OpenBao or moto, the oidc-provider IdP, the gateway), with the restriction on
the connection secret and on its shared credential. Each new version narrows ``allowed_dags`` to ``orders_hourly``:
a DAG the old version admitted is refused by the new one from the adoption on, and the DAGs neither admits, and
resolutions outside any task, stay refused.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.idp import IdpClient
from devstack.moto import Moto
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from tests.attacks.task_context import task_of
from tests.leak_scan import LEAKS
from tests.resilience.gateway import accepted

pytestmark = pytest.mark.usefixtures("fresh_process_state")

OLD_DAGS = ["orders_*"]  # what the connection admits before the new version
NEW_DAGS = ["orders_hourly"]  # the new version's restriction


def _client(label: str, client_id: str | None = None) -> IdpClient:
    client = IdpClient(client_id or f"restricted-{uuid.uuid4().hex[:8]}", f"{label}-secret-{secrets.token_hex(12)}")
    LEAKS.plant(client.client_secret)
    return client


def _access_denied() -> type[Exception]:
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

    return AirflowSecretsBackendAccessDenied


def _credential(stack: Stack, client: IdpClient, allowed_dags: list[str] | None = None) -> dict[str, Any]:
    block = stack.kong_auth(client_id=client.client_id, client_secret=client.client_secret)
    return block if allowed_dags is None else {**block, "allowed_dags": allowed_dags}


class Versions:
    """One restricted Kong connection whose versions are written where ``where`` says: the connection secret itself
    (``connection``), or its shared credential (``credentials_path``), with the connection restricted to OLD_DAGS."""

    def __init__(self, stack: Stack, where: str, write: Callable[[str, dict[str, Any]], Any], prefix: str) -> None:
        self.stack, self.where, self.write = stack, where, write
        suffix = uuid.uuid4().hex[:8]
        self.cid = f"restricted_{suffix}"
        self.conn_name = f"{prefix}{self.cid}"
        self.credential_name = f"kong-credentials/{suffix}"

    def connection(self, kong_auth: dict[str, Any]) -> dict[str, Any]:
        host, port = self.stack.gateway_host_port()
        return {"conn_type": "http", "host": host, "port": port, "schema": "http", "kong_auth": kong_auth}

    def first(self, client: IdpClient) -> None:
        """The version before the change: restricted to OLD_DAGS (by the connection)."""
        if self.where == "connection":
            self.write(self.conn_name, self.connection({**_credential(self.stack, client), "allowed_dags": OLD_DAGS}))
        else:
            self.write(self.credential_name, _credential(self.stack, client))
            self.write(
                self.conn_name, self.connection({"credentials_path": self.credential_name, "allowed_dags": OLD_DAGS})
            )

    def next_version(self, client: IdpClient) -> dict[str, Any]:
        """The new version's secret (a rotated client secret, narrowed to NEW_DAGS) and where it goes."""
        if self.where == "connection":
            return self.connection({**_credential(self.stack, client), "allowed_dags": NEW_DAGS})
        return _credential(self.stack, client, allowed_dags=NEW_DAGS)

    @property
    def rotated(self) -> str:
        return self.conn_name if self.where == "connection" else self.credential_name


def _assert_refused(backend: KongSecretsBackend, cid: str, dag_id: str | None, match: str) -> None:
    if dag_id is None:
        with pytest.raises(_access_denied(), match=match):
            backend.get_connection(cid)
        return
    with task_of(dag_id), pytest.raises(_access_denied(), match=match):
        backend.get_connection(cid)


def _assert_restricted(backend: KongSecretsBackend, cid: str) -> None:
    """After the adoption: the new version's narrowing and the old restriction both hold, inside and outside tasks."""
    _assert_refused(backend, cid, "orders_daily", "'orders_daily'")  # admitted by the old version only
    _assert_refused(backend, cid, "marketing_daily", "'marketing_daily'")  # admitted by neither
    _assert_refused(backend, cid, None, "outside any task")


WHERE = ["connection", "credentials_path"]


def _vault_backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(**stack.backend_kwargs(**extra))
    backend._set_connection_class(Connection)
    return backend


@pytest.mark.parametrize("where", WHERE)
def test_a_restricted_connection_stays_restricted_after_a_kv_version_change(stack: Stack, where: str) -> None:
    old = _client("kv-old")
    stack.idp.put_client(old)
    v = Versions(stack, where, lambda path, data: stack.put(path, data), "connections/")
    v.first(old)
    backend = _vault_backend(stack, credential_cache_ttl=0.3)
    with task_of("orders_daily"):
        first = accepted(stack, backend.get_connection(v.cid))
    new = _client("kv-new", old.client_id)
    stack.idp.put_client(new)
    stack.put(v.rotated, v.next_version(new))  # a new KV version
    time.sleep(0.4)  # past credential_cache_ttl: the next resolution reads and adopts the new version
    stack.idp.reset_counts()
    # the resolution that adopts it comes from a DAG only the old version admitted
    _assert_refused(backend, v.cid, "orders_daily", r"may not be used by dag_id 'orders_daily'")
    with task_of("orders_hourly"):
        assert accepted(stack, backend.get_connection(v.cid)) == first  # a rotation: the old token, still fresh
    _assert_restricted(backend, v.cid)
    assert stack.idp.token_requests() == 0  # nothing was minted for a refused resolution


@pytest.mark.parametrize("where", WHERE)
def test_a_restricted_connection_stays_restricted_after_an_invalid_client_reread(stack: Stack, where: str) -> None:
    old = _client("reread-old")
    stack.idp.put_client(old)
    v = Versions(stack, where, lambda path, data: stack.put(path, data), "connections/")
    v.first(old)
    backend = _vault_backend(stack, credential_cache_ttl=600)  # the backend keeps holding the old version
    with task_of("orders_daily"):
        accepted(stack, backend.get_connection(v.cid))
    new = _client("reread-new", old.client_id)
    stack.idp.put_client(new)  # the IdP now refuses the secret held
    stack.put(v.rotated, v.next_version(new))
    stack.idp.reset_counts()
    # A retried try mints afresh: invalid_client -> the source read again -> the new version refuses this DAG
    # before anything is minted with it.
    with task_of("orders_daily", try_number=2), pytest.raises(_access_denied(), match="'orders_daily'"):
        backend.get_connection(v.cid)
    assert stack.idp.token_requests(old.client_id) == 1  # the refused old secret only
    with task_of("orders_hourly", try_number=2):  # the same path, admitted: the new version is adopted
        accepted(stack, backend.get_connection(v.cid))
    assert stack.idp.token_requests(old.client_id) == 3  # the refused old secret again, then the new one
    _assert_restricted(backend, v.cid)
    assert stack.idp.token_requests(old.client_id) == 3


@pytest.mark.parametrize("where", WHERE)
def test_a_restricted_connection_stays_restricted_after_an_awspending_fallback(
    stack: Stack, aws_env: Moto, where: str
) -> None:
    old = _client("aws-old")
    new = _client("aws-new", old.client_id)
    stack.idp.put_client(new)  # the rotation set the new secret at the IdP; AWSCURRENT still holds the old one
    v = Versions(stack, where, aws_env.put_secret, "airflow/connections/")
    v.first(old)
    aws_env.put_pending(v.rotated, v.next_version(new))
    backend = KongSecretsBackend(source="aws", region_name="eu-central-1", endpoint_url=aws_env.url)
    set_connection_class(backend, Connection)
    stack.idp.reset_counts()
    # refused AWSCURRENT -> re-read (unchanged) -> AWSPENDING, which refuses this DAG before anything is minted
    _assert_refused(backend, v.cid, "orders_daily", r"may not be used by dag_id 'orders_daily'")
    assert stack.idp.token_requests(old.client_id) == 1
    with task_of("orders_hourly"):  # the same path, admitted: the pending version is adopted
        accepted(stack, backend.get_connection(v.cid))
    assert stack.idp.token_requests(old.client_id) == 3
    _assert_restricted(backend, v.cid)  # the pending version's restrictions, and the connection's
    assert stack.idp.token_requests(old.client_id) == 3


def test_a_task_scoped_variant_adopted_by_a_reread_keeps_the_new_versions_restrictions(stack: Stack) -> None:
    """task_scopes give a task its own variant of the connection, held apart from the connection itself. After an
    invalid_client re-read adopts a new version for that variant only, a DAG the new version refuses must not get
    the variant's token through the old version it was checked against."""
    write = "orders:read orders:write"
    old = IdpClient(f"restricted-{uuid.uuid4().hex[:8]}", f"scoped-old-secret-{secrets.token_hex(12)}", scope=write)
    LEAKS.plant(old.client_secret)
    stack.idp.put_client(old)
    suffix = uuid.uuid4().hex[:8]
    cid, path = f"restricted_{suffix}", f"kong-credentials/{suffix}"
    stack.put(path, _credential(stack, old) | {"scope": write})
    task_scopes = [{"tasks": ["post_*"], "scope": write}]
    block = {"credentials_path": path, "scope": "orders:read", "allowed_dags": OLD_DAGS, "task_scopes": task_scopes}
    stack.put(f"connections/{cid}", stack.connection(block))
    backend = _vault_backend(stack, credential_cache_ttl=600)
    for dag_id in ("orders_hourly", "orders_daily"):
        with task_of(dag_id, task_id="post_orders"):
            accepted(stack, backend.get_connection(cid))
    new = IdpClient(old.client_id, f"scoped-new-secret-{secrets.token_hex(12)}", scope=write)
    LEAKS.plant(new.client_secret)
    stack.idp.put_client(new)
    stack.put(path, _credential(stack, new) | {"scope": write, "allowed_dags": NEW_DAGS})
    with task_of("orders_hourly", try_number=2, task_id="post_orders"):  # invalid_client -> re-read -> adopted
        accepted(stack, backend.get_connection(cid))
    with task_of("orders_daily", task_id="post_orders"), pytest.raises(_access_denied(), match="'orders_daily'"):
        backend.get_connection(cid)
