"""Zero failed resolutions through credential rotations and task retries, on the real OpenBao and IdP."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.idp import IdpClient
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from tests.leak_scan import LEAKS
from tests.resilience.gateway import accepted

pytestmark = pytest.mark.usefixtures("fresh_process_state")


def _client(ttl: int) -> IdpClient:
    client = IdpClient(
        f"rotating-{uuid.uuid4().hex[:8]}", f"first-secret-{secrets.token_hex(12)}", access_token_ttl=ttl
    )
    LEAKS.plant(client.client_secret)
    return client


def _rotate(client: IdpClient) -> IdpClient:
    new = IdpClient(client.client_id, f"next-secret-{secrets.token_hex(12)}", access_token_ttl=client.access_token_ttl)
    LEAKS.plant(new.client_secret)
    return new


def _secret(stack: Stack, client: IdpClient) -> dict[str, Any]:
    secret = stack.kong_connection()
    secret["kong_auth"].update(client_id=client.client_id, client_secret=client.client_secret)
    return secret


def _backend(stack: Stack, **extra: Any) -> KongSecretsBackend:
    b = KongSecretsBackend(**stack.backend_kwargs(**extra))
    b._set_connection_class(Connection)
    return b


def test_a_new_secret_version_is_picked_up_and_the_old_token_served_until_it_nears_expiry(stack: Stack) -> None:
    client = _client(ttl=8)  # advisory margin: 4 s
    stack.idp.put_client(client)
    cid = f"rot_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", _secret(stack, client))
    b = _backend(stack, credential_cache_ttl=0.5)
    first = accepted(stack, b.get_connection(cid))

    rotated = _rotate(client)
    stack.idp.put_client(rotated)  # the IdP now refuses the old secret
    stack.put(f"connections/{cid}", _secret(stack, rotated))  # Vault holds the new one
    stack.idp.reset_counts()
    time.sleep(0.6)  # past the credential TTL: the new version is read
    tokens = []
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:  # every resolution succeeds and passes the gateway, across the switch
        tokens.append(accepted(stack, b.get_connection(cid)))
        if len(tokens) > 2 and tokens[-3] != first:
            break
        time.sleep(0.25)
    assert tokens[0] == first  # the old version's token, still fresh, is served
    assert tokens[-1] != first  # then the new version's token takes over
    assert stack.idp.token_requests(client.client_id) == 1  # one mint, with the new secret


def test_a_secret_revoked_at_the_idp_is_reread_from_vault_and_retried_once(stack: Stack) -> None:
    client = _client(ttl=4)
    stack.idp.put_client(client)
    cid = f"rot_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", _secret(stack, client))
    b = _backend(stack, credential_cache_ttl=600)  # the backend keeps holding the old credential
    accepted(stack, b.get_connection(cid))

    rotated = _rotate(client)
    stack.put(f"connections/{cid}", _secret(stack, rotated))
    stack.idp.put_client(rotated)
    time.sleep(3.7)  # the token is in its mandatory window: a mint is needed, with the cached (revoked) secret
    stack.idp.reset_counts()
    accepted(stack, b.get_connection(cid))  # invalid_client -> re-read Vault, bypassing the cache -> retry
    assert stack.idp.token_requests(client.client_id) == 2


class _TI:
    """What Airflow puts on the task context stack while a task runs."""

    def __init__(self, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "orders_hourly", "get_orders", "manual__1", -1
        self.try_number = try_number


@pytest.fixture
def task_try() -> Iterator[list[dict[str, Any]]]:
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT

    depth = len(_CURRENT_CONTEXT)
    yield _CURRENT_CONTEXT  # type: ignore[misc]
    del _CURRENT_CONTEXT[depth:]


def test_a_retried_task_starts_with_a_fresh_token_once_per_try(stack: Stack, task_try: list[Any]) -> None:
    cid = f"retry_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection())
    b = _backend(stack)
    task_try.append({"ti": _TI(try_number=1)})
    first = accepted(stack, b.get_connection(cid))
    assert accepted(stack, b.get_connection(cid)) == first  # same try: reused

    task_try[-1] = {"ti": _TI(try_number=2)}
    stack.idp.reset_counts()
    retried = accepted(stack, b.get_connection(cid))
    assert retried != first
    assert accepted(stack, b.get_connection(cid)) == retried  # only the first resolution of the try mints
    assert stack.idp.token_requests() == 1

    task_try.pop()
    assert accepted(stack, b.get_connection(cid)) == retried  # outside a task nothing changes
