"""Attacks on a shared credential (``credentials_path``) on the real stack: OpenBao, the oidc-provider IdP, the
gateway, and moto for AWS Secrets Manager.

A connection secret's author is not trusted with the credential it borrows: whatever the connection says, the
shared client secret goes only to the shared credential's own endpoint, for at most the credential's scope, from
the DAGs the credential admits; and with ``credentials_prefix`` only credentials under that prefix are ever read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.idp import IdpClient
from devstack.moto import Moto
from devstack.stack import ORDERS_AUDIENCE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from tests.attacks.task_context import task_of
from tests.conftest import assert_no_secrets
from tests.faulty_aws import faulty_aws
from tests.leak_scan import LEAKS
from tests.resilience.gateway import accepted

pytestmark = pytest.mark.usefixtures("fresh_process_state")


class Recorder:
    """A TCP listener on loopback that records every connection and byte it receives (answering each request
    with a well-formed token response, as an attacker's endpoint would)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        body = json.dumps({"access_token": "stolen", "token_type": "Bearer", "expires_in": 300}).encode()
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    listener = Recorder()
    try:
        yield listener
    finally:
        listener.stop()


def _backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(**stack.backend_kwargs(**extra))
    backend._set_connection_class(Connection)
    return backend


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"borrow_{suffix}", f"kong-credentials/{suffix}"


def _client(scope: str = "orders:read") -> IdpClient:
    client = IdpClient(f"shared-{uuid.uuid4().hex[:8]}", f"shared-secret-{secrets.token_hex(12)}", scope=scope)
    LEAKS.plant(client.client_secret)
    return client


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("kong_secrets")]


def _refused(
    stack: Stack, caplog: pytest.LogCaptureFixture, backend: KongSecretsBackend, cid: str, planted: list[str]
) -> str:
    """Resolve cid expecting a refusal: exactly one ERROR record (returned), no secret in any output."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        backend.get_connection(cid)
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert cid in errors[0]
    assert_no_secrets(caplog.text + str(info.value), [*stack.planted_secrets(), *planted])
    return errors[0]


def _claims(authorization: str) -> dict[str, Any]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_url", "{recorder}/oauth2/token"),
        ("issuer", "{recorder}"),
        ("audience", "https://kong.example.com/admin"),
        ("client_auth_method", "client_secret_post"),
        ("token_params", {"scope": "admin"}),
    ],
)
def test_a_connection_borrowing_a_shared_credential_cannot_send_it_to_its_own_endpoint(
    stack: Stack, caplog: pytest.LogCaptureFixture, recorder: Recorder, field: str, value: Any
) -> None:
    """The reproduction of the confused deputy: the connection names the shared credential and supplies the fields
    it lacks (an endpoint of its author's, a wider scope). Nothing reaches the endpoint; one ERROR names the field."""
    cid, path = _names()
    client = _client()
    stack.idp.put_client(client)
    credential = stack.kong_auth(client_id=client.client_id, client_secret=client.client_secret)
    stack.put(path, {k: v for k, v in credential.items() if k != field})  # the field the credential lacks
    if isinstance(value, str):
        value = value.format(recorder=recorder.url)
    stack.put(
        f"connections/{cid}",
        stack.connection({"credentials_path": path, field: value, "scope": "orders:read"}),
    )
    stack.idp.reset_counts()
    message = _refused(stack, caplog, _backend(stack), cid, [client.client_secret])
    assert f"kong_auth.{field} may not be set by a connection that names credentials_path '{path}'" in message
    assert f"secret/connections/{cid}" in message
    assert recorder.connections == 0 and recorder.received == b""
    assert stack.idp.token_requests() == 0


def test_a_borrowed_credential_is_used_as_the_credential_says(stack: Stack) -> None:
    """The legitimate use: the connection names the credential, optionally narrows its scope; tokens pass the
    gateway and carry the narrowed scope."""
    client = _client(scope="orders:read orders:write")
    stack.idp.put_client(client)
    cid, path = _names()
    credential = stack.kong_auth(
        client_id=client.client_id, client_secret=client.client_secret, scope="orders:read orders:write"
    )
    stack.put(path, credential)
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path, "scope": "orders:read"}))
    stack.put(f"connections/{cid}_all", stack.connection({"credentials_path": path, "flow": "client_credentials"}))
    backend = _backend(stack)
    narrowed = accepted(stack, backend.get_connection(cid))
    assert _claims(narrowed)["scope"] == "orders:read" and _claims(narrowed)["aud"] == ORDERS_AUDIENCE
    whole = accepted(stack, backend.get_connection(f"{cid}_all"))
    assert set(_claims(whole)["scope"].split()) == {"orders:read", "orders:write"}


@pytest.mark.parametrize(
    ("granted", "asked", "expected"),
    [
        ("orders:read", "orders:write admin", "kong_auth.scope asks for 'admin orders:write' beyond the scope"),
        ("orders:read", "orders:read admin", "kong_auth.scope asks for 'admin' beyond the scope"),
        (None, "orders:read", "has no scope; a connection may only narrow"),
    ],
)
def test_a_widened_scope_is_refused_and_nothing_is_minted(
    stack: Stack, caplog: pytest.LogCaptureFixture, granted: str | None, asked: str, expected: str
) -> None:
    client = _client(scope="orders:read orders:write admin")  # the IdP would grant it: the backend must not ask
    stack.idp.put_client(client)
    cid, path = _names()
    stack.put(path, stack.kong_auth(client_id=client.client_id, client_secret=client.client_secret, scope=granted))
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path, "scope": asked}))
    stack.idp.reset_counts()
    message = _refused(stack, caplog, _backend(stack), cid, [client.client_secret])
    assert expected in message and path in message
    assert stack.idp.token_requests() == 0


@pytest.mark.parametrize(("mine", "theirs"), [("flow", "key_auth"), ("header_name", "X-Stolen")])
def test_flow_or_header_name_disagreeing_with_the_credential_is_refused(
    stack: Stack, caplog: pytest.LogCaptureFixture, mine: str, theirs: str
) -> None:
    cid, path = _names()
    stack.put(path, stack.kong_auth(header_name="Authorization"))
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path, mine: theirs}))
    stack.idp.reset_counts()
    message = _refused(stack, caplog, _backend(stack), cid, [])
    assert f"kong_auth.{mine} of the connection differs from that of its shared credential" in message
    assert stack.idp.token_requests() == 0


@pytest.mark.parametrize(
    "outside", ["kong-credentials-admin/{suffix}", "kong/{suffix}", "kong-credentials", "other/kong-credentials/x"]
)
def test_a_credentials_path_outside_credentials_prefix_is_refused_without_being_read(
    stack: Stack, caplog: pytest.LogCaptureFixture, outside: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    cid, path = f"borrow_{suffix}", outside.format(suffix=suffix)
    stack.put(path, stack.kong_auth())  # a real credential, readable by the backend's Vault policy or not
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path}))
    stack.put(f"connections/{cid}_plain", {"conn_type": "http", "host": "example.com"})
    backend = _backend(stack, credentials_prefix="kong-credentials")
    assert backend.get_conn_value(f"{cid}_plain")  # logged in: from here every Vault request is counted
    before = stack.bao.request_count()
    stack.idp.reset_counts()
    message = _refused(stack, caplog, backend, cid, [])
    assert f"kong_auth.credentials_path '{path}' is outside credentials_prefix 'kong-credentials'" in message
    assert stack.bao.request_count() - before == 1  # the connection secret only
    assert stack.idp.token_requests() == 0


def test_a_credentials_path_under_credentials_prefix_is_read(stack: Stack) -> None:
    cid, path = _names()
    stack.put(path, stack.kong_auth())
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path}))
    accepted(stack, _backend(stack, credentials_prefix="/kong-credentials/").get_connection(cid))


def test_credentials_prefix_holds_on_aws_too_and_the_path_is_never_asked_for(
    stack: Stack, aws_env: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    suffix = uuid.uuid4().hex[:8]
    cid, inside, outside = f"borrow_{suffix}", f"kong/consumers/{suffix}", f"kong/consumers-admin/{suffix}"
    host, port = stack.gateway_host_port()
    for name in (inside, outside):
        aws_env.put_secret(name, stack.kong_auth())
    for conn_id, path in ((cid, inside), (f"{cid}_admin", outside)):
        aws_env.put_secret(
            f"airflow/connections/{conn_id}",
            {
                "conn_type": "http",
                "host": host,
                "port": port,
                "schema": "http",
                "kong_auth": {"credentials_path": path},
            },
        )
    with faulty_aws(aws_env.url) as wire:
        backend = KongSecretsBackend(
            source="aws", region_name="eu-central-1", endpoint_url=wire.url, credentials_prefix="kong/consumers"
        )
        set_connection_class(backend, Connection)
        accepted(stack, backend.get_connection(cid))
        message = _refused(stack, caplog, backend, f"{cid}_admin", [])
        assert f"'{outside}' is outside credentials_prefix 'kong/consumers'" in message
        assert wire.reads(inside) and not wire.reads(outside)


def test_the_credentials_own_allowed_dags_are_enforced_with_the_connections(stack: Stack) -> None:
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

    cid, path = _names()
    stack.put(path, {**stack.kong_auth(), "allowed_dags": ["orders_*"]})
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path}))  # unrestricted by itself
    stack.put(f"connections/{cid}_r", stack.connection({"credentials_path": path, "allowed_dags": ["*_hourly"]}))
    backend = _backend(stack)
    with task_of("orders_hourly"):
        accepted(stack, backend.get_connection(cid))
        accepted(stack, backend.get_connection(f"{cid}_r"))
    for dag_id, conn_id, refused_by in [
        ("marketing_hourly", cid, "allowed_dags of its shared credential"),
        ("marketing_hourly", f"{cid}_r", "allowed_dags of its shared credential"),
        ("orders_daily", f"{cid}_r", "(allowed_dags: *_hourly)"),
        (None, cid, "outside any task"),
    ]:
        with contextlib.ExitStack() as context:
            if dag_id is not None:
                context.enter_context(task_of(dag_id))
            with pytest.raises(AirflowSecretsBackendAccessDenied) as info:
                backend.get_connection(conn_id)
        assert refused_by in str(info.value) and repr(conn_id) in str(info.value)
