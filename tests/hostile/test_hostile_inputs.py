"""Hostile input, table-driven, on the real OpenBao: each case is one clear ERROR record and nothing leaked.

The secrets are written to Vault and resolved through KongSecretsBackend exactly as Airflow would; the IdP
cases use a token endpoint that misbehaves on purpose (tests/faulty_idp.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from tests.conftest import assert_no_secrets
from tests.faulty_idp import faulty_idp
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

CASE_SECRET = "hostile-case-client-secret-" + uuid.uuid4().hex
LEAKS.plant(CASE_SECRET)
MB = 1024 * 1024


@pytest.fixture(scope="module")
def faulty_url() -> Iterator[str]:
    with faulty_idp() as url:
        yield url


def _auth(stack: Stack, **changes: Any) -> dict[str, Any]:
    block = stack.kong_auth(client_secret=CASE_SECRET)
    block.update(changes)
    return {k: v for k, v in block.items() if v is not None}


def _conn(stack: Stack, kong_auth: Any, **fields: Any) -> dict[str, Any]:
    secret = stack.kong_connection()
    secret["kong_auth"] = kong_auth
    secret.update(fields)
    return secret


Case = Callable[[Stack, str], dict[str, Any]]

SECRET_CASES: list[tuple[str, Case, str]] = [
    ("kong_auth_not_json", lambda s, f: _conn(s, "{not json"), "kong_auth is a string but not valid JSON"),
    ("kong_auth_list", lambda s, f: _conn(s, [1, 2]), "kong_auth must be a JSON object, not list"),
    ("kong_auth_number", lambda s, f: _conn(s, 42), "kong_auth must be a JSON object, not int"),
    ("kong_auth_null_string", lambda s, f: _conn(s, "null"), "kong_auth must be a JSON object, not NoneType"),
    ("unknown_flow", lambda s, f: _conn(s, _auth(s, flow="password")), "kong_auth.flow 'password'"),
    ("unknown_field", lambda s, f: _conn(s, _auth(s, client_sercet="x")), "unknown fields: client_sercet"),
    ("missing_client_id", lambda s, f: _conn(s, _auth(s, client_id=None)), "kong_auth.client_id is missing"),
    ("missing_secret", lambda s, f: _conn(s, _auth(s, client_secret=None)), "client_secret"),
    ("missing_token_url", lambda s, f: _conn(s, _auth(s, token_url=None)), "token_url"),
    ("secret_wrong_type", lambda s, f: _conn(s, _auth(s, client_secret=12345678)), "client_secret must be"),
    ("client_id_wrong_type", lambda s, f: _conn(s, _auth(s, client_id=["a"])), "client_id must be"),
    ("scope_wrong_type", lambda s, f: _conn(s, _auth(s, scope={"a": 1})), "scope must be"),
    ("token_params_list", lambda s, f: _conn(s, _auth(s, token_params=["a"])), "token_params must be"),
    ("token_params_grant", lambda s, f: _conn(s, _auth(s, token_params={"grant_type": "x"})), "grant_type"),
    ("header_name_bad", lambda s, f: _conn(s, _auth(s, header_name="X Bad\r\n")), "header_name"),
    ("megabyte_client_id", lambda s, f: _conn(s, _auth(s, client_id="a" * MB)), "kong_auth.client_id is longer"),
    ("megabyte_secret", lambda s, f: _conn(s, _auth(s, client_secret="s" * MB)), "kong_auth.client_secret is longer"),
    ("allowed_dags_empty", lambda s, f: _conn(s, _auth(s, allowed_dags=[])), "allowed_dags must be"),
    ("allowed_dags_wrong", lambda s, f: _conn(s, _auth(s, allowed_dags=[1])), "allowed_dags must be"),
    ("extra_not_json", lambda s, f: _conn(s, _auth(s), extra="{nope"), "extra is a string but not a JSON object"),
    ("extra_list", lambda s, f: _conn(s, _auth(s), extra=[1]), "extra must be a JSON object"),
    ("port_not_a_number", lambda s, f: _conn(s, _auth(s), port="eighty"), "port must be an integer"),
    ("conn_uri_and_kong", lambda s, f: _conn(s, _auth(s), conn_uri="http://h"), "cannot be combined with conn_uri"),
    ("http_token_url", lambda s, f: _conn(s, _auth(s, token_url="http://idp.example.com/t")), "http:// on a non-loop"),
    ("userinfo_url", lambda s, f: _conn(s, _auth(s, token_url="https://u:p@idp.example.com/t")), "user:password@"),
    ("ftp_url", lambda s, f: _conn(s, _auth(s, token_url="ftp://idp.example.com/t")), "absolute https:// URL"),
    ("url_not_string", lambda s, f: _conn(s, _auth(s, token_url=5)), "token_url must be"),
    (
        "credentials_path_missing",
        lambda s, f: _conn(s, {"credentials_path": "kong-credentials/none"}),  # a borrower sets no credential field
        "holds no secret",
    ),
    (
        "credentials_path_traversal",
        lambda s, f: _conn(s, _auth(s, credentials_path="../sys/x")),
        "must not contain '.' or '..'",
    ),
    ("unicode_client_id", lambda s, f: _conn(s, _auth(s, client_id="airflow\u202eorders\u200b")), "unexpected"),
]

IDP_CASES: list[tuple[str, str, str]] = [
    ("idp_no_access_token", "no_access_token", "without an access_token"),
    ("idp_token_type_mac", "mac", "token_type 'mac'"),
    ("idp_negative_expiry", "negative_expiry", "expires_in=-5"),
    ("idp_not_json", "html", "non-JSON body"),
    ("idp_10mb_body", "huge", "exceeds the 1048576-byte cap"),
    ("idp_10mb_chunked", "huge_chunked", "exceeds the 1048576-byte cap"),
    ("idp_slow_drip", "drip", "deadline"),
    ("idp_slow_answer", "slow", "did not answer within"),
    ("idp_redirect", "redirect", "redirects are not followed"),
    ("idp_500", "500", "HTTP 500"),
    ("idp_invalid_client", "invalid_client", "invalid_client (bad secret)"),
]

BAD_CONN_IDS = ["../sys/policy/root", "%2e%2e/other", "/absolute", "a/../../b", "bell\x07", "x%0ay", "a\\b"]


def _resolve_expecting_error(
    stack: Stack, caplog: pytest.LogCaptureFixture, cid: str, expected: str, **kwargs: Any
) -> str:
    backend = KongSecretsBackend(**stack.backend_kwargs(**kwargs))
    backend._set_connection_class(Connection)
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        backend.get_connection(cid)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("kong_secrets_backend")]
    assert len(errors) == 1, [r.getMessage()[:300] for r in errors]
    message = errors[0].getMessage()
    assert repr(cid)[1:-1][:40] in message or cid in message
    assert expected in message, message[:500]
    assert_no_secrets(caplog.text + str(info.value), [*stack.planted_secrets(), CASE_SECRET])
    return message


@pytest.mark.parametrize(("name", "make", "expected"), SECRET_CASES, ids=[c[0] for c in SECRET_CASES])
def test_bad_secret_is_one_clear_error(
    stack: Stack, caplog: pytest.LogCaptureFixture, faulty_url: str, name: str, make: Case, expected: str
) -> None:
    cid = f"hostile_{name}"
    stack.put(f"connections/{cid}", make(stack, faulty_url))
    message = _resolve_expecting_error(stack, caplog, cid, expected)
    assert f"secret/connections/{cid}" in message


@pytest.mark.parametrize(("name", "fault", "expected"), IDP_CASES, ids=[c[0] for c in IDP_CASES])
def test_hostile_idp_response_is_one_clear_error(
    stack: Stack, caplog: pytest.LogCaptureFixture, faulty_url: str, name: str, fault: str, expected: str
) -> None:
    cid = f"hostile_{name}"
    stack.put(f"connections/{cid}", _conn(stack, _auth(stack, token_url=f"{faulty_url}/{fault}")))
    _resolve_expecting_error(stack, caplog, cid, expected, deadline=1.5)


@pytest.mark.parametrize("cid", BAD_CONN_IDS, ids=[json.dumps(c) for c in BAD_CONN_IDS])
def test_conn_id_leaving_the_path_is_refused_before_any_request(
    stack: Stack, caplog: pytest.LogCaptureFixture, cid: str
) -> None:
    before = stack.bao.request_count()
    backend = KongSecretsBackend(**stack.backend_kwargs())
    backend._set_connection_class(Connection)
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(Exception, match="conn_id"):
        backend.get_connection(cid)
    assert stack.bao.request_count() == before
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_dag_outside_allowed_dags_gets_access_denied_naming_conn_id_and_dag(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

    cid = "hostile_allowed_dags"
    stack.put(
        f"connections/{cid}",
        _conn(
            stack,
            _auth(stack, client_secret=None, allowed_dags=["orders_*"])
            | {"client_secret": stack.clients["airflow-orders"].client_secret},
        ),
    )
    backend = KongSecretsBackend(**stack.backend_kwargs())
    backend._set_connection_class(Connection)

    class _TI:  # what Airflow puts on the context stack while a task runs
        def __init__(self, dag_id: str) -> None:
            self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index = dag_id, "t", "r", 1, -1

    with pytest.raises(AirflowSecretsBackendAccessDenied, match="outside any task"):
        backend.get_connection(cid)
    _CURRENT_CONTEXT.append({"ti": _TI("marketing_daily")})  # type: ignore[arg-type]
    try:
        with pytest.raises(AirflowSecretsBackendAccessDenied, match=r"'hostile_allowed_dags'.*'marketing_daily'"):
            backend.get_connection(cid)
        _CURRENT_CONTEXT[-1] = {"ti": _TI("orders_hourly")}  # type: ignore[assignment]
        conn = backend.get_connection(cid)
        assert conn is not None and conn.extra_dejson["Authorization"].startswith("Bearer ")
    finally:
        _CURRENT_CONTEXT.pop()


def test_there_are_at_least_forty_hostile_cases() -> None:
    assert len(SECRET_CASES) + len(IDP_CASES) + len(BAD_CONN_IDS) + 1 >= 40
