"""Session-wide real stack: OpenBao, oidc-provider and the HAProxy gateway, started once on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack.stack import Stack, start_stack  # noqa: E402
from kong_secrets_backend.cache.memory import PROCESS_TOKEN_CACHE  # noqa: E402
from kong_secrets_backend.runtime import reset_runtimes  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_process_state() -> Iterator[None]:
    """Each test starts as a new task process would: no runtimes, no cached tokens."""
    reset_runtimes()
    PROCESS_TOKEN_CACHE.clear()
    yield
    reset_runtimes()
    PROCESS_TOKEN_CACHE.clear()


def assert_no_secrets(text: str, planted: list[str]) -> None:
    leaked = [f"{s[:4]}..." for s in planted if s and s in text]
    assert not leaked, f"planted secrets leaked into output: {leaked}"
