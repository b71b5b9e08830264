"""The deployment harness's own bookkeeping (devstack/deployment.py), without starting anything."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from devstack.deployment import RunResult, TaskRecord, deployment_env, host_name

T0 = datetime(2026, 1, 1, 12, 0, 0)


def task(task_id: str, start: float, end: float, host: str = "worker-a") -> TaskRecord:
    return TaskRecord(task_id, -1, "success", host, 1, 100, T0 + timedelta(seconds=start), T0 + timedelta(seconds=end))


def test_max_concurrency_counts_the_tasks_running_at_the_same_moment() -> None:
    tasks = {t.task_id: t for t in (task("a", 0, 10), task("b", 1, 3), task("c", 2, 4), task("d", 3, 5))}
    result = RunResult("d", "r", "success", tasks, 1.0)
    assert result.max_concurrency() == 3  # a, b, c at 2..3; b ends at 3 as d starts
    assert result.ok and result.hosts == dict.fromkeys("abcd", "worker-a")


def test_host_name_is_the_host_a_process_stands_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_HOST", "worker-b")
    assert host_name() == "worker-b"
    monkeypatch.delenv("DEVSTACK_HOST")
    assert host_name()


def test_every_server_of_the_deployment_is_configured_for_loopback() -> None:
    env = deployment_env(
        {"PYTHONPATH": "/elsewhere"}, api_port=8123, executor="celery", jwt_secret="j" * 16, api_secret="s" * 16
    )
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["PYTHONPATH"].split(":")[1] == "/elsewhere"  # this checkout first, then the caller's path


def test_the_echo_upstream_delays_an_answer_when_asked_within_the_gateway_timeout() -> None:
    from devstack.echo import MAX_DELAY, _delay

    assert _delay("delay=5") == 5.0 and _delay("page=2&delay=0.5") == 0.5
    assert _delay("") == _delay("delay=soon") == _delay("delay=-3") == 0.0
    assert _delay("delay=600") == MAX_DELAY < 10  # the gateway's server timeout
