"""Attack: the credential crosses the network in clear.

HttpHook builds ``<schema>://<host>`` and falls back to ``http`` when a connection has no ``schema``. The backend
returns a Kong connection without ``schema`` as ``https``, and refuses by name, before any token is minted, a
Kong connection whose effective scheme is ``http`` (its ``schema``, or a scheme written into ``host``) to a host
that is not loopback, unless the backend kwarg ``allow_insecure_http`` is true. A Vault ``url`` that is
``http://`` off loopback is accepted, as Airflow's VaultBackend accepts it, with one WARNING per process.

The non-loopback peer is real: a listener on this machine's own non-loopback address (skipped where there is none)
that records every header it receives.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.connection import check_gateway_scheme, kong_conn_value
from kong_secrets_backend.errors import SecretFormatError
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("fresh_process_state")


REMOTE_HOST = "kong.example.com"  # a gateway across the network: never contacted by these tests


def _conn_id() -> str:
    return f"attack_plain_{uuid.uuid4().hex[:8]}"


# -- http to a host that is not loopback ----------------------------------------------------------------------------


@pytest.mark.parametrize("written_in", ["schema", "host"])
def test_http_to_a_host_that_is_not_loopback_is_refused_by_name_before_any_token_is_minted(
    stack: Stack, caplog: pytest.LogCaptureFixture, written_in: str
) -> None:
    host, port = REMOTE_HOST, 8000  # never contacted: the refusal comes before any request
    cid = _conn_id()
    secret: dict[str, Any] = {"conn_type": "http", "port": port, "kong_auth": stack.kong_auth()}
    secret.update({"schema": "http", "host": host} if written_in == "schema" else {"host": f"http://{host}"})
    stack.put(f"connections/{cid}", secret)
    mints_before = stack.idp.token_requests()
    backend = KongSecretsBackend(**stack.backend_kwargs())
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(SecretFormatError):
        backend.get_conn_value(cid)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert cid in errors[0] and host in errors[0] and "allow_insecure_http" in errors[0]
    assert ("schema is http" if written_in == "schema" else "host is an http:// URL") in errors[0]
    assert stack.idp.token_requests() == mints_before  # refused before the IdP was asked for a token
    assert_no_secrets("\n".join(errors), stack.planted_secrets())


def test_allow_insecure_http_lets_it_through_and_the_hook_would_send_the_token_in_clear(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: what the refusal prevents. With the opt-in, an unchanged HttpHook builds a plain http URL to
    the remote host and would send the bearer token over it (built, not sent: nothing here leaves loopback)."""
    from airflow.providers.http.hooks.http import HttpHook

    cid = _conn_id()
    stack.put(
        f"connections/{cid}",
        {"conn_type": "http", "host": REMOTE_HOST, "port": 8000, "schema": "http", "kong_auth": stack.kong_auth()},
    )
    conn = KongSecretsBackend(**stack.backend_kwargs(allow_insecure_http=True)).get_connection(cid)
    assert conn is not None
    hook = HttpHook(method="GET", http_conn_id=cid)
    monkeypatch.setattr(hook, "get_connection", lambda conn_id: conn)
    session = hook.get_conn()
    assert hook.base_url == f"http://{REMOTE_HOST}:8000"
    assert session.headers["Authorization"] == conn.extra_dejson["Authorization"]
    assert conn.extra_dejson["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    "fields",
    [
        {"schema": "http", "host": "127.0.0.1"},
        {"schema": "http", "host": "127.42.0.9:8000"},
        {"schema": "HTTP", "host": "localhost"},
        {"schema": "http", "host": "[::1]"},
        {"host": "http://localhost:8000/kong"},
        {"host": "http://[::1]:8000"},
        {"schema": "https", "host": "kong.example.com"},
        {"host": "https://kong.example.com"},
        {"host": "kong.example.com"},
        {"schema": "", "host": "kong.example.com"},
    ],
)
def test_loopback_http_and_https_are_accepted(fields: dict[str, str]) -> None:
    check_gateway_scheme(fields, allow_insecure_http=False)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"schema": "http", "host": "kong.example.com"}, "schema is http"),
        ({"schema": " Http ", "host": "10.0.0.8:8000"}, "schema is http"),
        ({"schema": "http", "host": "localhost.evil.example"}, "schema is http"),
        ({"schema": "http", "host": "127.0.0.1.nip.io"}, "schema is http"),
        ({"schema": "http"}, "schema is http"),
        ({"schema": "https", "host": "http://kong.example.com"}, "host is an http:// URL"),
        ({"host": "HTTP://kong.example.com:80/api"}, "host is an http:// URL"),
    ],
)
def test_http_off_loopback_is_refused_naming_the_field_and_the_host(fields: dict[str, str], named: str) -> None:
    with pytest.raises(SecretFormatError, match=named):
        check_gateway_scheme(fields, allow_insecure_http=False)
    check_gateway_scheme(fields, allow_insecure_http=True)


# -- https by default -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [None, "", "  "])
def test_a_kong_connection_without_schema_comes_back_https(schema: str | None) -> None:
    data = {"conn_type": "http", "host": "kong.example.com"} | ({} if schema is None else {"schema": schema})
    out = json.loads(kong_conn_value(data, header_name="Authorization", header_value="Bearer t", conn_id="c"))
    assert out["schema"] == "https"


def test_the_hooks_url_is_https_for_a_kong_connection_stored_without_schema(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real source and the real HttpHook (the e2e run in test_redirects.py checks it inside a task)."""
    from airflow.providers.http.hooks.http import HttpHook

    cid, key = _conn_id(), f"kak-no-schema-{uuid.uuid4().hex}"
    LEAKS.plant(key)
    stack.put(
        f"connections/{cid}",
        {"conn_type": "http", "host": "kong.example.com", "kong_auth": {"flow": "key_auth", "key": key}},
    )
    conn = KongSecretsBackend(**stack.backend_kwargs()).get_connection(cid)
    assert conn.schema == "https"
    hook = HttpHook(method="GET", http_conn_id=cid)
    monkeypatch.setattr(hook, "get_connection", lambda conn_id: conn)
    assert hook.url_from_endpoint("/orders") == "https://kong.example.com/orders"


def test_plain_connections_keep_their_schema_as_the_official_backend_returns_it(stack: Stack) -> None:
    cid = _conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "api.example.com"})
    assert json.loads(KongSecretsBackend(**stack.backend_kwargs()).get_conn_value(cid) or "{}") == {
        "conn_type": "http",
        "host": "api.example.com",
    }


# -- Vault over http ------------------------------------------------------------------------------------------------


_WARNINGS_SCRIPT = r"""
import json, logging, sys
from kong_secrets_backend import KongSecretsBackend

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.levelname, record.getMessage()))
logging.getLogger("kong_secrets_backend").addHandler(Keep())

kwargs, remote_url, conn_id = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
values = [KongSecretsBackend(**kwargs).get_conn_value(conn_id)]  # the stack's Vault on loopback: no warning
for _ in range(3):  # Airflow builds the backend again and again (built only: no request leaves loopback)
    KongSecretsBackend(**{**kwargs, "url": remote_url})
print(json.dumps({"values": values, "warnings": [m for level, m in records if level == "WARNING"]}))
"""


def test_an_http_vault_url_off_loopback_is_accepted_with_one_warning_per_process(stack: Stack, tmp_path: Path) -> None:
    cid = _conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "api.example.com"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "VAULT_"))}
    env.update({"AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    remote_url = f"http://{REMOTE_HOST}:8200"
    proc = subprocess.run(
        [sys.executable, "-c", _WARNINGS_SCRIPT, json.dumps(stack.backend_kwargs()), remote_url, cid],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    LEAKS.record("vault warning subprocess", proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["values"] == [json.dumps({"conn_type": "http", "host": "api.example.com"})]
    assert len(report["warnings"]) == 1, report["warnings"]
    assert REMOTE_HOST in report["warnings"][0] and "http://" in report["warnings"][0]
    assert_no_secrets(proc.stdout + proc.stderr, stack.planted_secrets())


@pytest.mark.parametrize(
    ("url", "vault_addr", "warned_host"),
    [
        ("http://vault.example.com:8200", None, "vault.example.com"),
        ("HTTP://10.1.2.3:8200", None, "10.1.2.3"),
        (None, "http://vault.internal:8200", "vault.internal"),  # hvac reads VAULT_ADDR when url is not set
        ("https://vault.example.com:8200", "http://vault.internal:8200", None),
        ("http://127.0.0.1:8200", None, None),
        ("http://localhost:8200", None, None),
        ("http://[::1]:8200", None, None),
        (None, None, None),  # hvac's default, http://localhost:8200
    ],
)
def test_which_vault_urls_are_plaintext_off_loopback(
    url: str | None, vault_addr: str | None, warned_host: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kong_secrets_backend.settings import parse_backend_kwargs
    from kong_secrets_backend.sources.vault_settings import plaintext_vault_host

    monkeypatch.delenv("VAULT_ADDR", raising=False)
    if vault_addr is not None:
        monkeypatch.setenv("VAULT_ADDR", vault_addr)
    settings = parse_backend_kwargs({"url": url, "auth_type": "token", "token": "t"}).vault
    assert settings is not None
    assert plaintext_vault_host(settings) == warned_host
