"""Metrics reach Airflow's own StatsD logger (a real UDP listener), under the kong_secrets_backend. prefix."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from kong_secrets_backend.airflow_bridge import metrics
from tests.statsd_listener import statsd_listener

SDK_STATS = "airflow.sdk._shared.observability.metrics.stats"


@pytest.fixture
def sdk_stats(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The task SDK's metrics module, restored after the test (initialize() changes module globals)."""
    import importlib

    module = importlib.import_module(SDK_STATS)
    for name in ("_factory", "_backend", "_export_legacy_names"):
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(metrics, "_warned", False)
    yield module


@pytest.fixture
def statsd(sdk_stats: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], list[str]]]:
    """Airflow's SafeStatsdLogger, configured like [metrics] statsd_on, sending to a UDP socket we read."""
    with statsd_listener(monkeypatch) as received:
        yield received


def test_mint_emits_a_counter_and_a_latency_timer_to_statsd(statsd: Callable[[int], list[str]]) -> None:
    metrics.mint("client_credentials", 0.042)
    packets = statsd(2)
    assert "airflow.kong_secrets_backend.mints:1|c" in packets
    [timer] = [p for p in packets if p.startswith("airflow.kong_secrets_backend.mint_duration:")]
    assert timer.endswith("|ms") and float(timer.split(":")[1].split("|")[0]) == pytest.approx(42, abs=1)


def test_cache_hits_and_errors_by_reason_are_counters_with_the_reason_in_the_name(
    statsd: Callable[[int], list[str]],
) -> None:
    metrics.cache_hit("kong_jwt")
    metrics.error("idp_invalid_client")
    metrics.error("Weird Reason/with:chars")
    assert statsd(3) == [
        "airflow.kong_secrets_backend.cache_hits:1|c",
        "airflow.kong_secrets_backend.errors.idp_invalid_client:1|c",
        "airflow.kong_secrets_backend.errors.weird_reason_with_chars:1|c",
    ]


def test_reason_names_are_bounded_and_safe() -> None:
    assert metrics.reason_name(None) == "error"
    assert metrics.reason_name("") == "error"
    assert metrics.reason_name("idp_" + "x" * 500) == ("idp_" + "x" * 500)[:48]
    assert metrics.reason_name("VAULT_down") == "vault_down"


def test_events_are_counted_in_process_for_the_check_command() -> None:
    before = metrics.counts()
    metrics.mint("client_credentials", 0.01)
    metrics.cache_hit("client_credentials")
    metrics.error("deadline")
    after = metrics.counts()
    assert after["mint:client_credentials"] == before.get("mint:client_credentials", 0) + 1
    assert after["cache_hit:client_credentials"] == before.get("cache_hit:client_credentials", 0) + 1
    assert after["error:deadline"] == before.get("error:deadline", 0) + 1
    assert metrics.mints_since(before) == 1


def test_a_broken_metrics_backend_never_breaks_a_resolution_and_warns_once(
    sdk_stats: object, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("statsd is down")

    from airflow.sdk.observability import stats

    stats.initialize(factory=Exploding, export_legacy_names=False)
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend.airflow_bridge.metrics"):
        metrics.mint("client_credentials", 0.1)
        metrics.cache_hit("client_credentials")
        metrics.error("deadline")
    warnings = [r for r in caplog.records if r.name == "kong_secrets_backend.airflow_bridge.metrics"]
    assert len(warnings) == 1 and "metrics are skipped" in warnings[0].getMessage()


def test_the_metrics_module_core_initialised_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the scheduler, triggerer and API server, Airflow initialises core's copy of the metrics module."""
    import importlib

    core = importlib.import_module(metrics._CORE_STATS)
    monkeypatch.setattr(core, "_factory", None)
    assert metrics._stats_module() is not core  # not initialised: the task SDK's module
    monkeypatch.setattr(core, "_factory", lambda: None)
    assert metrics._stats_module() is core
