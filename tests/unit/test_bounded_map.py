"""The bounded LRU map every in-process map of the backend is built on."""

from __future__ import annotations

import threading
import time

from kong_secrets_backend.cache.bounded import BoundedMap


def test_records_expire_after_their_ttl_and_zero_keeps_nothing() -> None:
    records: BoundedMap[str, str] = BoundedMap(maxsize=10, ttl=0.1)
    records["k"] = "v"
    assert records.get("k") == "v"
    time.sleep(0.15)
    assert records.get("k") is None
    nothing: BoundedMap[str, str] = BoundedMap(maxsize=10, ttl=0)
    nothing["k"] = "v"
    assert nothing.get("k") is None


def test_records_are_bounded_oldest_first() -> None:
    records: BoundedMap[int, int] = BoundedMap(maxsize=3, ttl=60)
    for i in range(5):
        records[i] = i
    assert [records.get(i) for i in range(5)] == [None, None, 2, 3, 4]


def test_records_are_least_recently_used_first_when_read() -> None:
    records: BoundedMap[int, int] = BoundedMap(maxsize=3)
    for i in range(3):
        records[i] = i
    assert records.get(0) == 0  # 0 is now the most recently used
    records[3] = 3
    assert [records.get(i) for i in range(4)] == [0, None, 2, 3]


def test_entries_without_a_ttl_stay_until_evicted() -> None:
    now = [0.0]
    records: BoundedMap[str, str] = BoundedMap(maxsize=2, clock=lambda: now[0])
    records["k"] = "v"
    now[0] = 1e9
    assert records.get("k") == "v"


def test_add_stores_once_among_racing_threads() -> None:
    records: BoundedMap[str, bool] = BoundedMap(maxsize=10)
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda: wins.append(records.add("try", True))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
