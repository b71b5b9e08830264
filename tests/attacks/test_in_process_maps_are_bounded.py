"""Attack: a flood of distinct connections (a DAG generating conn_ids) must not grow a process without bound, and a
realistic working set (10,000 connections) must stay hot. Evicted tokens come back from the shared cache, or are
minted again; never served stale, never lost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from airflow.sdk.definitions.connection import Connection

from kong_secrets_backend.airflow_bridge.connections import ConnectionMemo
from kong_secrets_backend.cache.file import FileTokenCache
from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.state import MAX_CONNECTIONS, PROCESS
from kong_secrets_backend.tokens import Origin, RefreshPolicy, Token
from kong_secrets_backend.tokens.broker import TokenBroker
from kong_secrets_backend.tokens.keeper import MAX_CONNECTIONS as KEEPER_CONNECTIONS
from kong_secrets_backend.transport.deadline import Deadline
from tests.attacks.answering_idp import AnsweringIdp
from tests.attacks.answering_idp import client_flow as flow

WORKING_SET = 10_000


def token(i: int) -> Token:
    now = time.time()
    return Token(value=f"t{i}", issued_at=now, expires_at=now + 300)


def test_every_in_process_map_holds_at_least_the_working_set() -> None:
    assert MemoryTokenCache().maxsize >= WORKING_SET and PROCESS.tokens.maxsize >= WORKING_SET
    assert ConnectionMemo().maxsize >= WORKING_SET
    assert MAX_CONNECTIONS >= WORKING_SET and KEEPER_CONNECTIONS >= WORKING_SET


def test_a_flood_of_tokens_is_bounded_and_the_least_recently_used_goes_first() -> None:
    cache = MemoryTokenCache()
    for i in range(WORKING_SET):
        cache.put(f"k{i}", token(i))
    assert len(cache) == WORKING_SET  # the working set is all there
    for i in range(cache.maxsize * 2):
        cache.put(f"flood{i}", token(i))
        if i % 1000 == 0:
            assert cache.entry("k0") is not None  # a hot entry, used all along, stays
    assert len(cache) == cache.maxsize
    assert cache.entry("k0") is not None and cache.entry("k1") is None


def test_a_flood_of_connections_is_bounded_in_the_connection_memo() -> None:
    memo = ConnectionMemo(maxsize=100)
    hot = json.dumps({"conn_type": "http", "host": "hot"})
    for i in range(1000):
        memo.connection("hot", None, hot, Connection, lambda: Connection.from_json(hot, conn_id="hot"))
        value = json.dumps({"conn_type": "http", "host": f"h{i}"})
        memo.connection(f"c{i}", None, value, Connection, lambda v=value: Connection.from_json(v, conn_id="c"))  # type: ignore[misc]
    assert len(memo._built) == 100 and ("hot", None) in memo._built


def test_an_evicted_token_is_read_again_from_the_shared_cache(idp: AnsweringIdp, tmp_path: Path) -> None:
    broker = TokenBroker(MemoryTokenCache(maxsize=2), RefreshPolicy(), shared=FileTokenCache(tmp_path))
    flows = [flow(idp, "secret-for-eviction", client_id=f"client-{i}") for i in range(3)]
    first = broker.obtain(flows[0], Deadline(5)).token
    for other in flows[1:]:
        broker.obtain(other, Deadline(5))  # pushes flows[0] out of memory
    assert idp.count("ok") == 3
    again = broker.obtain(flows[0], Deadline(5))
    assert again.origin is Origin.SHARED and again.token.value == first.value and idp.count("ok") == 3


def test_without_a_shared_cache_an_evicted_token_is_minted_again(idp: AnsweringIdp) -> None:
    broker = TokenBroker(MemoryTokenCache(maxsize=1), RefreshPolicy())
    one, two = (flow(idp, "secret-for-eviction", client_id=f"client-{i}") for i in range(2))
    broker.obtain(one, Deadline(5))
    broker.obtain(two, Deadline(5))
    assert broker.obtain(one, Deadline(5)).origin is Origin.MINTED and idp.count("ok") == 3
