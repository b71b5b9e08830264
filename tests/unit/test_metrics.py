"""Metrics reach Airflow's own StatsD logger (a real UDP listener), under the kong_secrets_backend. prefix."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from kong_secrets_backend.airflow_bridge import metrics
from kong_secrets_backend.errors import ErrorCategory, KongAuthError, TokenEndpointError
from kong_secrets_backend.flows.oauth_response import parse_token_response
from kong_secrets_backend.transport.http import HttpResponse
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


def test_cache_hits_and_errors_by_category_are_counters_with_the_category_in_the_name(
    statsd: Callable[[int], list[str]],
) -> None:
    metrics.cache_hit("kong_jwt")
    metrics.error(ErrorCategory.IDENTITY_PROVIDER_REFUSED, "idp_invalid_client")
    metrics.error("Weird Reason/with:chars")
    assert statsd(3) == [
        "airflow.kong_secrets_backend.cache_hits:1|c",
        "airflow.kong_secrets_backend.errors.identity_provider_refused:1|c",
        "airflow.kong_secrets_backend.errors.internal:1|c",
    ]


class Recorder:
    """Stands in for Airflow's metrics module: keeps every call with its tags."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def incr(self, name: str, *, tags: dict[str, str]) -> None:
        self.calls.append(("incr", name, tags))

    def timing(self, name: str, value: object, *, tags: dict[str, str]) -> None:
        self.calls.append(("timing", name, tags))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(metrics, "_stats_module", lambda: rec)
    return rec


FIXED_ERROR_NAMES = {f"kong_secrets_backend.errors.{category.value}" for category in ErrorCategory}


@pytest.mark.parametrize(
    "code",
    [
        "invalid_client",
        "Weird Reason/with:chars",
        "evil.name:1|c",
        "x" * 500,
        "vault_down",
        "../../etc",
        "\u00e9t\u00e9",
    ],
)
def test_metric_names_come_from_a_fixed_set_whatever_the_idp_says(recorder: Recorder, code: str) -> None:
    for status in (400, 401, 429, 500, 503):
        resp = HttpResponse(status, {"Content-Type": "application/json"}, json.dumps({"error": code}).encode())
        with pytest.raises(TokenEndpointError) as info:
            parse_token_response(resp, flow="client_credentials", default_ttl=300)
        metrics.error(info.value.category, info.value.reason)
    names = {name for _, name, _ in recorder.calls}
    assert names <= FIXED_ERROR_NAMES
    assert names == {
        "kong_secrets_backend.errors.identity_provider_refused",
        "kong_secrets_backend.errors.identity_provider",
    }
    tags = [t for _, _, t in recorder.calls]
    assert {t["category"] for t in tags} == {"identity_provider_refused", "identity_provider"}
    expected_reason = "idp_invalid_client" if code == "invalid_client" else "other"
    assert {t["reason"] for t in tags} == {expected_reason}


def test_there_is_one_error_metric_name_per_category_and_nothing_else(recorder: Recorder) -> None:
    for category in ErrorCategory:
        metrics.error(category, "whatever")
    for not_a_category in ("idp_invalid_client", "", None, 42, "VAULT_down"):
        metrics.error(not_a_category)  # type: ignore[arg-type]
    names = {name for _, name, _ in recorder.calls}
    assert names == FIXED_ERROR_NAMES
    assert len(FIXED_ERROR_NAMES) == len(ErrorCategory) == 10


def test_a_backend_failure_is_counted_under_its_category_with_its_bounded_reason(recorder: Recorder) -> None:
    from kong_secrets_backend.backend import KongSecretsBackend

    backend = KongSecretsBackend(source="nowhere")
    with pytest.raises(KongAuthError):
        backend.get_conn_value("kong_orders")
    assert recorder.calls == [
        ("incr", "kong_secrets_backend.errors.config", {"category": "config", "reason": "bad_config"})
    ]


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
