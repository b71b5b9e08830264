"""The rules of a shared credential (``credentials_path``), on parse_kong_auth alone: pure, nothing read."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kong_secrets_backend.airflow_bridge.task import TaskIdentity
from kong_secrets_backend.connection import (
    BORROWER_FIELDS,
    KongConnection,
    check_credentials_path,
    credentials_path,
    parse_kong_auth,
)
from kong_secrets_backend.errors import AccessDenied, ConfigError, SecretFormatError
from kong_secrets_backend.sources import SecretRecord
from tests.backend_settings import SETTINGS, backend_settings

PATH = "kong/consumers/orders"
CREDENTIAL: dict[str, Any] = {
    "flow": "client_credentials",
    "token_url": "https://idp.example.com/oauth2/token",
    "client_id": "airflow-orders",
    "client_secret": "shared-client-secret-123",
    "scope": "orders:read orders:write",
    "audience": "https://kong.example.com/orders",
}


def _connection(**kong_auth: Any) -> SecretRecord:
    return SecretRecord(
        data={"conn_type": "http", "host": "kong.example.com", "kong_auth": {"credentials_path": PATH, **kong_auth}},
        path="secret/connections/orders",
        version="3",
    )


def _shared(**fields: Any) -> SecretRecord:
    data = {**CREDENTIAL, **fields}
    return SecretRecord(data={k: v for k, v in data.items() if v is not None}, path=PATH, version="7")


def _task(dag_id: str) -> TaskIdentity:
    return TaskIdentity(dag_id=dag_id, task_id="t", run_id="r", try_number=1, map_index=-1)


def test_the_shared_credential_holds_the_endpoint_and_the_client() -> None:
    auth = parse_kong_auth(_connection(), shared=_shared(), settings=SETTINGS)
    cred: Any = auth.credential
    assert (cred.token_url, cred.client_id, cred.scope) == (
        CREDENTIAL["token_url"],
        "airflow-orders",
        "orders:read orders:write",
    )
    assert auth.version == f"{PATH}@7" and auth.credentials_path == PATH


@pytest.mark.parametrize(
    "field",
    ["token_url", "issuer", "client_id", "client_secret", "client_auth_method", "private_key", "kid", "alg",
     "audience", "resource", "token_params", "key", "secret", "algorithm", "ttl", "claims", "role", "bogus"],
)  # fmt: skip
def test_a_borrowing_connection_may_set_no_field_of_the_credential(field: str) -> None:
    record = _connection(**{field: "https://attacker.example.com/token"})
    with pytest.raises(SecretFormatError, match=rf"kong_auth\.{field} may not be set by a connection that names"):
        credentials_path(record, None, SETTINGS)  # refused before the credential is read
    with pytest.raises(SecretFormatError, match=rf"kong_auth\.{field} may not be set"):
        parse_kong_auth(record, shared=_shared(), settings=SETTINGS)


def test_the_allow_list_is_the_contracts() -> None:
    assert frozenset({"flow", "credentials_path", "header_name", "allowed_dags", "task_scopes", "scope"}) == (
        BORROWER_FIELDS
    )


def test_every_refused_field_is_named_and_no_value_is_shown() -> None:
    record = _connection(token_url="https://attacker.example.com/t", client_id="someone-else")
    with pytest.raises(SecretFormatError) as info:
        credentials_path(record, None, SETTINGS)
    assert "kong_auth.client_id, kong_auth.token_url" in str(info.value)
    assert "attacker" not in str(info.value) and "someone-else" not in str(info.value)


@pytest.mark.parametrize(("asked", "granted"), [("orders:read", None), ("orders:read orders:write", None)])
def test_a_connection_may_not_set_a_scope_when_the_credential_has_none(asked: str, granted: Any) -> None:
    with pytest.raises(SecretFormatError, match="has no scope"):
        parse_kong_auth(_connection(scope=asked), shared=_shared(scope=granted), settings=SETTINGS)


@pytest.mark.parametrize("asked", ["orders:write admin", "admin", ["orders:read", "orders:delete"], "orders:read*"])
def test_a_scope_beyond_the_credentials_is_refused(asked: Any) -> None:
    with pytest.raises(SecretFormatError, match="beyond the scope of its shared credential"):
        parse_kong_auth(_connection(scope=asked), shared=_shared(), settings=SETTINGS)


@pytest.mark.parametrize(
    ("asked", "sent"),
    [("orders:read", "orders:read"), ("  orders:write   orders:read ", "orders:write orders:read"), (None, None)],
)
def test_a_scope_within_the_credentials_narrows_it(asked: Any, sent: str | None) -> None:
    auth = parse_kong_auth(_connection(scope=asked), shared=_shared(), settings=SETTINGS)
    assert auth.credential.scope == (sent or CREDENTIAL["scope"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mine", "theirs", "ok"),
    [
        ({"flow": "client_credentials"}, {}, True),
        ({"flow": "client_credentials"}, {"flow": "client_credentials"}, True),
        ({"flow": "kong_jwt"}, {"flow": "client_credentials"}, False),
        ({"header_name": "X-Token"}, {}, True),
        ({"header_name": "x-token"}, {"header_name": "X-Token"}, True),
        ({"header_name": "X-Other"}, {"header_name": "X-Token"}, False),
    ],
)
def test_flow_and_header_name_must_agree_where_both_set_them(
    mine: dict[str, str], theirs: dict[str, str], ok: bool
) -> None:
    shared = _shared(**{"flow": None, **theirs})
    if ok:
        auth = parse_kong_auth(_connection(**mine), shared=shared, settings=SETTINGS)
        if "header_name" in mine:
            assert auth.credential.header_name.lower() == mine["header_name"].lower()
    else:
        with pytest.raises(SecretFormatError, match=f"kong_auth.{next(iter(mine))} of the connection differs"):
            parse_kong_auth(_connection(**mine), shared=shared, settings=SETTINGS)


def test_task_scopes_is_a_field_a_borrower_may_name() -> None:
    credentials_path(_connection(task_scopes={"t": "orders:read"}), None, SETTINGS)  # not refused by the allow-list


@pytest.mark.parametrize(("field", "value"), [("credentials_path", "kong/other"), ("task_scopes", [{"scope": "x"}])])
def test_a_credential_setting_a_connections_own_field_is_refused(field: str, value: Any) -> None:
    with pytest.raises(SecretFormatError, match=f"the shared credential at 'kong/consumers/orders' sets {field}"):
        parse_kong_auth(_connection(), shared=_shared(**{field: value}), settings=SETTINGS)


def test_parsing_never_mutates_either_secret() -> None:
    record, shared = _connection(allowed_dags=["orders_*"], scope="orders:read"), _shared(allowed_dags=["orders_h*"])
    before = copy.deepcopy((record.data, shared.data))
    for _ in range(2):
        auth = parse_kong_auth(record, shared=shared, settings=SETTINGS)
        assert auth.allowed_dags == ("orders_*",) and auth.credential_allowed_dags == ("orders_h*",)
    assert (record.data, shared.data) == before


def test_the_credentials_own_allowed_dags_hold_in_addition_to_the_connections() -> None:
    auth = parse_kong_auth(
        _connection(allowed_dags=["orders_*"]), shared=_shared(allowed_dags=["orders_hourly"]), settings=SETTINGS
    )
    conn = KongConnection(record=_connection(), auth=auth, flow=None)  # type: ignore[arg-type]
    conn.check_access("orders", _task("orders_hourly"))
    with pytest.raises(AccessDenied, match=r"'orders_daily' \(allowed_dags of its shared credential at kong/"):
        conn.check_access("orders", _task("orders_daily"))
    with pytest.raises(AccessDenied, match=r"'marketing' \(allowed_dags: orders_\*\)"):
        conn.check_access("orders", _task("marketing"))
    with pytest.raises(AccessDenied, match="outside any task"):
        conn.check_access("orders", None)


def test_the_credentials_allowed_dags_hold_alone_too() -> None:
    auth = parse_kong_auth(_connection(), shared=_shared(allowed_dags="orders_*"), settings=SETTINGS)
    conn = KongConnection(record=_connection(), auth=auth, flow=None)  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match="shared credential"):
        conn.check_access("orders", _task("marketing"))
    with pytest.raises(SecretFormatError, match="allowed_dags of the shared credential at 'kong/consumers/orders'"):
        parse_kong_auth(_connection(), shared=_shared(allowed_dags=[]), settings=SETTINGS)


@pytest.mark.parametrize(
    ("prefix", "path", "admitted"),
    [
        ("kong/consumers", "kong/consumers/x", True),
        ("kong/consumers", "kong/consumers/team/x", True),
        ("/kong/consumers/", "kong/consumers/x", True),
        ("kong/consumers", "kong/consumers-admin/x", False),
        ("kong/consumers", "kong/consumers", False),
        ("kong/consumers", "kong/x", False),
        ("kong/consumers", "other/kong/consumers/x", False),
        ("kong", "kong2/x", False),
    ],
)
def test_credentials_prefix_admits_whole_path_segments_only(prefix: str, path: str, admitted: bool) -> None:
    settings = backend_settings(credentials_prefix=prefix)
    record = SecretRecord(data={"kong_auth": {"credentials_path": path}}, path="secret/connections/c")
    if admitted:
        assert credentials_path(record, None, settings) == path
        check_credentials_path(path, settings.credentials_prefix)
    else:
        with pytest.raises(SecretFormatError, match=rf"credentials_path '{path}' is outside credentials_prefix"):
            credentials_path(record, None, settings)


@pytest.mark.parametrize("prefix", ["", "/", "kong/../sys", "a\x07"])
def test_a_credentials_prefix_that_admits_everything_or_leaves_its_path_is_a_config_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="credentials_prefix"):
        backend_settings(credentials_prefix=prefix)
