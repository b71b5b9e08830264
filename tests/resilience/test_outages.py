"""Outages and slowness: bounded retries inside the deadline, and a still-valid token served throughout."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.openbao import OpenBao, start_openbao
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import KongAuthError
from tests.faulty_idp import GOOD, _Handler, faulty_idp

pytestmark = pytest.mark.usefixtures("fresh_process_state")


@pytest.fixture(scope="module")
def idp_url() -> Iterator[str]:
    with faulty_idp() as url:
        yield url


@pytest.fixture
def own_vault(tmp_path: Path) -> Iterator[OpenBao]:
    """A Vault of this test's own, to seal and stop without disturbing the session stack."""
    bao = start_openbao(tmp_path / "bao")
    try:
        yield bao
    finally:
        bao.stop()


def _secret(stack: Stack, token_url: str) -> dict[str, Any]:
    return stack.kong_connection(token_url=token_url)


def _backend(url: str, token: str, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(url=url, token=token, **extra)
    b._set_connection_class(Connection)
    return b


def _token(conn: Connection | None) -> str:
    assert conn is not None
    return str(conn.extra_dejson["Authorization"])


def test_transient_idp_errors_are_retried_with_backoff_inside_the_deadline(stack: Stack, idp_url: str) -> None:
    cid = f"flaky_{uuid.uuid4().hex[:6]}"
    stack.put(f"connections/{cid}", _secret(stack, f"{idp_url}/flaky/2/{cid}"))
    started = time.monotonic()
    conn = _backend(stack.bao.url, stack.bao.root_token).get_connection(cid)
    assert _token(conn) == f"Bearer {GOOD['access_token']}"
    assert _Handler.flaky_counts[cid] == 3  # two 503s, then a token
    assert time.monotonic() - started < 3


def test_a_refusal_is_not_retried(stack: Stack, idp_url: str) -> None:
    cid = f"refused_{uuid.uuid4().hex[:6]}"
    stack.put(f"connections/{cid}", _secret(stack, f"{idp_url}/invalid_client"))
    before = len(_Handler.requests_seen)
    with pytest.raises(KongAuthError):
        _backend(stack.bao.url, stack.bao.root_token).get_connection(cid)
    assert len(_Handler.requests_seen) - before == 1


def test_a_still_valid_token_is_served_while_the_idp_fails(
    stack: Stack, idp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    faults = ["500", "503", "html", "slow", "down"]
    ids = {fault: f"idp_out_{fault}_{uuid.uuid4().hex[:6]}" for fault in faults}
    for cid in ids.values():
        stack.put(f"connections/{cid}", _secret(stack, f"{idp_url}/switch/{cid}"))
    b = _backend(stack.bao.url, stack.bao.root_token, deadline=1.5, refresh_jitter=0)
    first = {cid: _token(b.get_connection(cid)) for cid in ids.values()}  # 8 s tokens: advisory window at 4 s
    time.sleep(4.2)
    for fault, cid in ids.items():
        _Handler.switch_modes[cid] = fault
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
        for cid in ids.values():
            for _ in range(3):
                started = time.monotonic()
                assert _token(b.get_connection(cid)) == first[cid]
                assert time.monotonic() - started < 2.5  # the deadline bounds even a hanging IdP
    assert caplog.text.count("serving the current token") == len(faults)  # one attempt, then a back-off


def test_a_still_valid_token_is_served_while_vault_is_sealed_then_down(
    stack: Stack, own_vault: OpenBao, caplog: pytest.LogCaptureFixture
) -> None:
    own_vault.put_secret("secret", "connections/kong_orders", stack.kong_connection())
    b = _backend(own_vault.url, own_vault.root_token, credential_cache_ttl=0.2, deadline=2)
    first = _token(b.get_connection("kong_orders"))
    own_vault.client().sys.seal()
    time.sleep(0.3)  # past the credential TTL: the next resolution must read Vault, which is sealed
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
        assert _token(b.get_connection("kong_orders")) == first
        own_vault.stop()
        time.sleep(0.3)
        started = time.monotonic()
        assert _token(b.get_connection("kong_orders")) == first
        assert time.monotonic() - started < 3
    assert "serving conn_id kong_orders from the secret last read" in caplog.text


def test_vault_down_without_a_token_is_one_clear_error_within_the_deadline(
    stack: Stack, own_vault: OpenBao, caplog: pytest.LogCaptureFixture
) -> None:
    own_vault.stop()
    b = _backend(own_vault.url, own_vault.root_token, deadline=2)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        b.get_connection("kong_orders")
    assert time.monotonic() - started < 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0] and "kong_orders" in errors[0]
