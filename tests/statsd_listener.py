"""Airflow's own StatsD metrics logger, pointed at a UDP socket the test reads (the `statsd` package is a test dep)."""

from __future__ import annotations

import contextlib
import importlib
import socket
from collections.abc import Callable, Iterator

import pytest

SDK_STATS = "airflow.sdk._shared.observability.metrics.stats"


@contextlib.contextmanager
def statsd_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], list[str]]]:
    """Configure the task SDK's metrics like ``[metrics] statsd_on``; yields ``received(n)``: the next n packets.

    The metrics module's globals are restored by ``monkeypatch`` afterwards.
    """
    module = importlib.import_module(SDK_STATS)
    for name in ("_factory", "_backend", "_export_legacy_names"):
        monkeypatch.setattr(module, name, getattr(module, name))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(sock.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)

    def received(expected: int) -> list[str]:
        packets: list[str] = []
        while len(packets) < expected:
            packets.extend(sock.recv(65536).decode().splitlines())
        return packets

    try:
        yield received
    finally:
        sock.close()
