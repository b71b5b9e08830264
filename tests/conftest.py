"""Session-wide real stack (OpenBao, oidc-provider, HAProxy gateway, on free loopback ports) and the leak scan."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devstack.airflow  # noqa: E402
from devstack.moto import SECRET_ACCESS_KEY, Moto, start_moto  # noqa: E402
from devstack.redis import Redis, start_redis  # noqa: E402
from devstack.stack import Stack, start_stack  # noqa: E402
from kong_secrets_backend.airflow_bridge import masking  # noqa: E402
from kong_secrets_backend.state import PROCESS, reset_runtimes  # noqa: E402
from tests.leak_scan import LEAKS, RecordingHandler  # noqa: E402

_RECORDER = RecordingHandler(LEAKS)


def _ensure_recorder() -> None:
    """Importing Airflow reconfigures logging (and drops foreign root handlers): re-attach before each test."""
    root = logging.getLogger()
    if _RECORDER not in root.handlers:
        root.addHandler(_RECORDER)
    if root.level > logging.DEBUG:
        root.setLevel(logging.DEBUG)


def pytest_configure(config: pytest.Config) -> None:
    _ensure_recorder()
    devstack.airflow.OUTPUT_OBSERVERS.append(lambda where, text: LEAKS.record(where, text))


def pytest_runtest_setup(item: pytest.Item) -> None:
    _ensure_recorder()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, content in report.sections:
        LEAKS.record(f"{report.nodeid} {name}", content)
    LEAKS.record(f"{report.nodeid} report", report.longreprtext)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = LEAKS.leaks()
    chunks, size = LEAKS.volume
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"leak scan: {chunks} captured outputs ({size / 1e6:.1f} MB) searched, {len(leaks)} leaks")
    if leaks:
        for where, secret in leaks[:50]:
            if reporter is not None:
                reporter.write_line(f"LEAK: {secret} in {where}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    LEAKS.plant(*running.planted_secrets())
    try:
        yield running
    finally:
        # every token the gateway accepted during the session must not have been printed anywhere
        for request in running.gateway.received():
            auth = request.get("headers", {}).get("authorization", "")
            LEAKS.plant(auth.removeprefix("Bearer ").strip())
        running.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """A moto server (AWS Secrets Manager, STS, IAM) on a free loopback port, for the AWS source's tests."""
    running = start_moto(tmp_path_factory.mktemp("moto"))
    LEAKS.plant(SECRET_ACCESS_KEY)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def aws_env(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """The standard boto3 chain reaches the moto server's test account (and nothing of the caller's AWS config)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto


@pytest.fixture(autouse=True, scope="module")
def _fresh_secrets_masker() -> None:
    """Airflow's masker recompiles one regex of every secret it holds on each new one: O(n^2) over a long
    suite. Start each module with an empty masker; values are registered again when next parsed or minted."""
    try:
        from airflow.sdk._shared.secrets_masker import reset_secrets_masker
    except ImportError:  # pragma: no cover
        return
    reset_secrets_masker()
    masking._registered.clear()


@pytest.fixture
def fresh_process_state() -> Iterator[None]:
    """Each test starts as a new task process would: no runtimes, no cached tokens."""
    reset_runtimes()
    PROCESS.tokens.clear()
    yield
    reset_runtimes()
    PROCESS.tokens.clear()


def assert_no_secrets(text: str, planted: list[str]) -> None:
    LEAKS.plant(*planted)
    leaked = [f"{s[:4]}..." for s in planted if s and s in text]
    assert not leaked, f"planted secrets leaked into output: {leaked}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    """A password-protected redis-server on a free loopback port; its password is planted for the leak scan."""
    running = start_redis(tmp_path / "redis")
    LEAKS.plant(running.password)
    try:
        yield running
    finally:
        running.stop()
