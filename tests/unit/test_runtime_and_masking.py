from __future__ import annotations

import time

import pytest

from kong_secrets_backend.airflow_bridge import masking
from kong_secrets_backend.errors import DeadlineExceeded
from kong_secrets_backend.settings import parse_backend_kwargs
from kong_secrets_backend.state import reset_runtimes, runtime_for
from kong_secrets_backend.transport.deadline import Deadline


def test_equal_settings_share_one_runtime_and_different_ones_do_not() -> None:
    reset_runtimes()
    a = runtime_for(parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t0ken-a"}))
    b = runtime_for(parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t0ken-a"}))
    c = runtime_for(parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "t0ken-b"}))
    assert a is b and a is not c
    assert a.broker.cache is c.broker.cache  # one token cache per process
    reset_runtimes()


def test_each_value_is_masked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(masking, "_masker", lambda: seen.append)
    masking.mask("value-to-mask-1", "value-to-mask-1", None, "abc")
    masking.mask("value-to-mask-1")
    assert seen == ["value-to-mask-1"]  # short values are left alone, like Airflow's masker does


def test_deadline_bounds_the_next_call_and_then_refuses() -> None:
    deadline = Deadline(0.2)
    assert deadline.timeout(cap=5) <= 0.2
    assert deadline.timeout(cap=0.05) == 0.05
    time.sleep(0.25)
    with pytest.raises(DeadlineExceeded, match="before the token request"):
        deadline.timeout(what="the token request")


def test_leak_scan_finds_a_planted_value_wherever_it_was_recorded() -> None:
    from tests.leak_scan import LeakScan

    scan = LeakScan()
    scan.record("log:x", "token is planted-value-123 here")
    scan.record("stdout", "nothing")
    scan.plant("planted-value-123", "short")
    assert scan.leaks() == [("log:x", "plante...")]
