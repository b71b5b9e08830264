"""The vertical slice on the real stack: Vault-held Kong credential -> oidc-provider token -> HAProxy gateway."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.connection import Connection

from devstack.stack import KV1_MOUNT, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import KongAuthError, SecretIdError
from kong_secrets_backend.state import runtime_for
from tests.conftest import assert_no_secrets

pytestmark = pytest.mark.usefixtures("fresh_process_state")


def backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs(**extra))
    b._set_connection_class(Connection)
    return b


def conn_id() -> str:
    return f"kong_{uuid.uuid4().hex[:10]}"


def call_gateway(stack: Stack, conn: Connection, path: str = "/orders") -> requests.Response:
    headers = {k: v for k, v in conn.extra_dejson.items()}
    return requests.get(f"{stack.gateway.url}{path}", headers=headers, timeout=5)


def test_kong_connection_comes_back_with_a_bearer_token_the_gateway_accepts(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    conn = backend(stack).get_connection(cid)
    assert conn is not None
    assert (conn.conn_type, conn.host, conn.schema) == ("http", "127.0.0.1", "http")
    assert not conn.login and not conn.password
    extra = conn.extra_dejson
    assert set(extra) == {"Accept", "Authorization"}
    assert extra["Authorization"].startswith("Bearer ey")
    assert "kong_auth" not in json.dumps(extra) and stack.clients["airflow-orders"].client_secret not in str(extra)
    resp = call_gateway(stack, conn)
    assert resp.status_code == 200, resp.text
    assert stack.gateway.received()[-1]["headers"]["x-consumer-username"] == "airflow-orders"


def test_gateway_rejects_a_tampered_token(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    conn = backend(stack).get_connection(cid)
    assert conn is not None
    token = conn.extra_dejson["Authorization"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    resp = requests.get(f"{stack.gateway.url}/orders", headers={"Authorization": tampered}, timeout=5)
    assert resp.status_code == 401


def test_fifty_resolutions_cost_one_token_request_one_login_and_one_vault_read(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    stack.idp.reset_counts()
    vault_before = stack.bao.request_count()
    for _ in range(50):
        # Airflow may build the backend again; the Vault login and the token cache must survive it.
        assert backend(stack).get_connection(cid) is not None
    assert stack.idp.token_requests() == 1
    assert stack.bao.request_count() - vault_before == 2  # one AppRole login, one KV read
    assert runtime_for(backend(stack)._config).source.logins == 1  # type: ignore[arg-type,attr-defined]


def test_concurrent_cold_resolutions_mint_exactly_one_token(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    stack.idp.reset_counts()
    b = backend(stack)
    barrier = threading.Barrier(24)
    values: list[str] = []
    errors: list[BaseException] = []

    def resolve() -> None:
        barrier.wait()
        try:
            conn = b.get_connection(cid)
            values.append(conn.extra_dejson["Authorization"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=resolve) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(values)) == 1 and len(values) == 24
    assert stack.idp.token_requests() == 1


def test_client_secret_post_and_kv_v1_work(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection("airflow-post"), mount=KV1_MOUNT, kv_version=1)
    conn = backend(stack, mount_point=KV1_MOUNT, kv_engine_version=1).get_connection(cid)
    assert conn is not None
    assert call_gateway(stack, conn).status_code == 200
    assert stack.gateway.received()[-1]["headers"]["x-consumer-username"] == "airflow-post"


def test_kong_auth_stored_as_a_json_string_works(stack: Stack) -> None:
    cid = conn_id()
    secret = stack.kong_connection()
    secret["kong_auth"] = json.dumps(secret["kong_auth"])
    secret["extra"] = json.dumps(secret["extra"])
    stack.put(f"connections/{cid}", secret)
    conn = backend(stack).get_connection(cid)
    assert conn is not None and call_gateway(stack, conn).status_code == 200


def test_a_changed_scope_takes_effect_at_once_but_a_new_version_alone_keeps_the_token(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    b = backend(stack, credential_cache_ttl=0)
    first = b.get_connection(cid)
    stack.put(f"connections/{cid}", stack.kong_connection())  # same content, new KV version: a rotation
    second = b.get_connection(cid)
    stack.put(f"connections/{cid}", stack.kong_connection(audience="https://kong.example.com/reports"))  # not one
    third = b.get_connection(cid)
    assert first is not None and second is not None and third is not None
    assert first.extra_dejson["Authorization"] == second.extra_dejson["Authorization"]
    assert third.extra_dejson["Authorization"] != first.extra_dejson["Authorization"]


def test_vault_403_logs_in_again_once(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    b = backend(stack, credential_cache_ttl=0)
    assert b.get_connection(cid) is not None
    source = runtime_for(b._config).source  # type: ignore[arg-type]
    stack.bao.client().auth.token.revoke(source._client.token)  # type: ignore[attr-defined]
    assert b.get_connection(cid) is not None
    assert source.logins == 2  # type: ignore[attr-defined]


def test_short_lived_tokens_are_refreshed_ahead_of_expiry(stack: Stack) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection("airflow-short"))
    b = backend(stack)
    stack.idp.reset_counts()
    first = b.get_connection(cid)
    time.sleep(11)  # lifetime 20 s: the margin is half of it
    second = b.get_connection(cid)
    assert first is not None and second is not None
    assert first.extra_dejson["Authorization"] != second.extra_dejson["Authorization"]
    assert stack.idp.token_requests() == 2


def test_plain_connection_variable_and_config_come_back_as_vault_backend_returns_them(stack: Stack) -> None:
    from airflow.providers.hashicorp.secrets.vault import VaultBackend

    cid = conn_id()
    stack.put(f"connections/{cid}", {"conn_uri": "postgresql://user:p%40ss@db.example.com:5432/orders?sslmode=require"})
    cid2 = conn_id()
    stack.put(f"connections/{cid2}", {"conn_type": "http", "host": "h", "login": "u", "extra": {"a": {"b": 1}}})
    stack.put("variables/kong_var", {"value": "hello"})
    stack.put("config/kong_cfg", {"value": "cfg-value"})
    ours = backend(stack)
    official = VaultBackend(**stack.backend_kwargs())
    official._set_connection_class(Connection)
    for c in (cid, cid2, "missing"):
        assert ours.get_conn_value(c) == official.get_conn_value(c)
        a, b = ours.get_connection(c), official.get_connection(c)
        assert (a and a.to_dict(validate=False)) == (b and b.to_dict(validate=False))
    assert ours.get_variable("kong_var") == official.get_variable("kong_var") == "hello"
    assert ours.get_config("kong_cfg") == official.get_config("kong_cfg") == "cfg-value"
    assert ours.get_variable("missing") is None


def test_bad_secret_gives_one_error_naming_conn_id_path_and_field(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection(client_id=None))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        backend(stack).get_connection(cid)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert cid in message and f"secret/connections/{cid}" in message and "kong_auth.client_id is missing" in message
    assert_no_secrets(caplog.text, stack.planted_secrets())


def test_idp_refusal_is_logged_with_the_oauth_error_and_no_secret(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection(client_secret="wrong-secret-value-123"))
    with caplog.at_level(logging.DEBUG), pytest.raises(KongAuthError):
        backend(stack).get_connection(cid)
    assert "invalid_client" in caplog.text and cid in caplog.text
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), "wrong-secret-value-123"])


def test_unknown_scope_is_refused_with_invalid_scope(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection(scope="admin:all"))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        backend(stack).get_connection(cid)
    assert "invalid_scope" in caplog.text


def test_traversal_conn_ids_are_refused_before_any_request(stack: Stack) -> None:
    b = backend(stack)
    before = stack.bao.request_count()
    for bad in ("../sys/policy", "/abs", "a/%2e%2e/b", "x\ny"):
        with pytest.raises(SecretIdError):
            b.get_connection(bad)
    assert stack.bao.request_count() == before


def test_tokens_and_secrets_are_registered_with_the_secrets_masker(stack: Stack) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    cid = conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    conn = backend(stack).get_connection(cid)
    assert conn is not None
    raw_token = conn.extra_dejson["Authorization"].removeprefix("Bearer ")
    line = f"token={raw_token} secret={stack.clients['airflow-orders'].client_secret} approle={stack.secret_id}"
    redacted = str(redact(line))
    assert raw_token not in redacted
    assert_no_secrets(redacted, stack.planted_secrets())


def test_backend_constructor_does_no_network_io(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the constructor opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    b = KongSecretsBackend(url="http://127.0.0.1:9", auth_type="approle", role_id="r", secret_id="s-secret-value")
    assert "s-secret-value" not in repr(b)


def test_misconfigured_backend_logs_error_and_keeps_airflow_alive(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        b = KongSecretsBackend(url="http://127.0.0.1:9", token="t0ken-value", kv_engine_version=7)
    assert "kv_engine_version must be 1 or 2" in caplog.text
    with pytest.raises(KongAuthError):
        b.get_conn_value("anything")


def test_every_planted_secret_is_a_real_value_so_leak_checks_cannot_pass_or_fail_on_an_empty_string(
    stack: Stack,
) -> None:
    planted = stack.planted_secrets()
    assert planted and all(isinstance(s, str) and len(s) >= 8 for s in planted)
