"""Fleet-scale token economy with real task processes: P = 20 processes, each resolving R times.

Task processes are forked from one zygote that imported Airflow (devstack/fleet.py, as Celery prefork does);
each starts with an empty token cache and its own Vault login, like a new task process or pod. They all
start at once, so their cold resolutions race. The IdP's own counter says how many tokens were minted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.connection import Connection

from devstack.fleet import Barrier, Fleet, Resolve, Task
from devstack.redis import Redis, start_redis
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

P, R = 20, 5
CLIENT = "airflow-orders"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as zygote:
        yield zygote


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    LEAKS.plant(server.password)
    try:
        yield server
    finally:
        server.stop()


def kong_conn(stack: Stack, client: str = CLIENT, **overrides: Any) -> str:
    conn_id = f"fleet_{uuid.uuid4().hex[:10]}"
    stack.put(f"connections/{conn_id}", stack.kong_connection(client, **overrides))
    return conn_id


def host(stack: Stack, tmp_path: Path, name: str, **kwargs: Any) -> Task:
    """A task process of one simulated host: its own cache directory ($XDG_CACHE_HOME)."""
    return Task(stack.backend_kwargs(**kwargs), env={"XDG_CACHE_HOME": str(tmp_path / name)})


def planted(stack: Stack, *extra: str) -> list[str]:
    return [*stack.planted_secrets(), *extra]


def test_memory_mode_mints_once_per_process(stack: Stack, fleet: Fleet, tmp_path: Path) -> None:
    conn_id = kong_conn(stack)
    stack.idp.reset_counts()
    run = fleet.run([host(stack, tmp_path, "a")] * P, [Resolve(conn_id, R)])
    assert run.failures == 0, run.errors()
    assert run.resolutions == P * R
    assert stack.idp.token_requests(CLIENT) == P
    assert len(run.distinct_tokens) == P


def test_file_mode_mints_once_per_host(stack: Stack, fleet: Fleet, tmp_path: Path) -> None:
    conn_id = kong_conn(stack)
    stack.idp.reset_counts()
    run = fleet.run([host(stack, tmp_path, "a", token_cache="file")] * P, [Resolve(conn_id, R)])
    assert run.failures == 0, run.errors()
    assert stack.idp.token_requests(CLIENT) == 1
    assert len(run.distinct_tokens) == 1
    entries = list((tmp_path / "a" / "kong-secrets-backend").glob("*.tok"))
    assert len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o600
    assert_no_secrets(entries[0].read_bytes().decode("latin-1"), planted(stack))
    assert_no_secrets(run.log_text(), planted(stack))

    # A later task process on the same host reads the token from the cache, and the gateway accepts it.
    stack.idp.reset_counts()
    run = fleet.run([host(stack, tmp_path, "a", token_cache="file")] * 2, [Resolve(conn_id, 1)])
    assert stack.idp.token_requests(CLIENT) == 0 and len(run.distinct_tokens | {"x"}) == 2

    # Two hosts: one mint each.
    conn_id = kong_conn(stack)
    stack.idp.reset_counts()
    tasks = [host(stack, tmp_path, "b", token_cache="file"), host(stack, tmp_path, "c", token_cache="file")] * (P // 2)
    run = fleet.run(tasks, [Resolve(conn_id, R)])
    assert run.failures == 0, run.errors()
    assert stack.idp.token_requests(CLIENT) == 2


def test_a_token_from_the_file_cache_is_accepted_by_the_gateway(
    stack: Stack, fleet: Fleet, tmp_path: Path, fresh_process_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = kong_conn(stack)
    stack.idp.reset_counts()
    fleet.run([host(stack, tmp_path, "a", token_cache="file")] * 2, [Resolve(conn_id, 1)])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a"))
    backend = KongSecretsBackend(**stack.backend_kwargs(token_cache="file"))  # this process: empty memory
    backend._set_connection_class(Connection)
    conn = backend.get_connection(conn_id)
    assert conn is not None
    resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
    assert resp.status_code == 200
    assert stack.idp.token_requests(CLIENT) == 1


def test_redis_mode_mints_once_for_two_hosts(stack: Stack, fleet: Fleet, redis_server: Redis, tmp_path: Path) -> None:
    redis_server.flush()
    conn_id = kong_conn(stack)
    stack.idp.reset_counts()
    tasks = [
        host(stack, tmp_path, "host-a", token_cache=redis_server.url),
        host(stack, tmp_path, "host-b", token_cache=redis_server.url),
    ] * (P // 2)
    run = fleet.run(tasks, [Resolve(conn_id, R)])
    assert run.failures == 0, run.errors()
    assert stack.idp.token_requests(CLIENT) == 1
    assert len(run.distinct_tokens) == 1
    client = redis_server.client()
    keys = [k for k in client.keys("kong-secrets-backend:token:*")]
    assert len(keys) == 1
    assert 290_000 < client.pttl(keys[0]) <= 300_000  # TTL = the token's remaining life
    assert_no_secrets(client.get(keys[0]).decode("latin-1"), planted(stack))
    assert not (tmp_path / "host-a").exists()  # redis mode writes nothing to disk
    assert_no_secrets(run.log_text(), planted(stack, redis_server.password))


def test_redis_killed_mid_run_fails_no_resolution(stack: Stack, fleet: Fleet, tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    LEAKS.plant(server.password)
    try:
        before, after = (
            kong_conn(stack),
            kong_conn(stack, "airflow-reports", scope="reports:read", audience="https://kong.example.com/reports"),
        )
        stack.idp.reset_counts()
        handle = fleet.start(
            [host(stack, tmp_path, f"host-{i % 2}", token_cache=server.url) for i in range(P)],
            [Resolve(before, R), Barrier("redis-killed"), Resolve(after, R), Resolve(before, R)],
        )
        handle.wait_barrier("redis-killed")
        assert stack.idp.token_requests(CLIENT) == 1  # the fleet shared one token while Redis was up
        server.kill()
        handle.release("redis-killed")
        run = handle.result()
    finally:
        server.stop()
    assert run.failures == 0, run.errors()
    assert run.resolutions == P * R * 3
    assert 1 <= stack.idp.token_requests("airflow-reports") <= P  # each process minted for itself
    assert stack.idp.token_requests(CLIENT) == 1  # the token already in memory kept being served
    for child in run.results:  # one WARNING per process for the outage, naming Redis without its password
        warnings = [r for r in child.logs if r["level"] == "WARNING"]
        assert len(warnings) == 1 and "Redis at redis://127.0.0.1:" in warnings[0]["message"], child.logs
    assert_no_secrets(run.log_text(), planted(stack, server.password))
