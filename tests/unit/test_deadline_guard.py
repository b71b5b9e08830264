"""The deadline's tools (transport/guard.py): a socket shut down at the deadline, urllib3 retries inside it, and a
call that cannot be bounded abandoned at it. Against a loopback server that drips its answer."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest
import requests

from kong_secrets_backend.errors import DeadlineExceeded
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.guard import SocketGuard, call_within, current_guard, guarded_adapter
from tests.attacks.fault_server import fault_server


def _session(**retry: object) -> requests.Session:
    session = requests.Session()
    adapter = guarded_adapter(**retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.mark.parametrize("fault", ["drip_status", "drip_headers", "tls_stall"])
def test_a_guard_shuts_down_a_connection_that_a_peer_drips_past_the_deadline(fault: str) -> None:
    with fault_server(fault) as server:
        deadline = Deadline(0.5)
        started = time.monotonic()
        with SocketGuard(deadline) as guard, pytest.raises(requests.RequestException):
            response = _session().get(server.url, timeout=5, verify=False)  # a per-read timeout never fires
            response.raise_for_status()
            raise requests.RequestException("headers cut short")  # http.client may take them as complete
        assert guard.expired
        assert time.monotonic() - started < 1.5


def test_urllib3_retries_stop_at_the_deadline() -> None:
    with fault_server("hang") as server:
        session = _session(total=10, backoff_factor=0.1, status_forcelist=[503], raise_on_status=False)
        started = time.monotonic()
        with SocketGuard(Deadline(0.5)), pytest.raises(requests.RequestException):
            session.get(server.url, timeout=0.2)  # ten retries of 0.2 s each, without the guard
        assert time.monotonic() - started < 1.0
        assert server.faulted <= 3


def test_a_guard_is_per_thread_and_restored_on_exit() -> None:
    seen: list[object] = []
    with SocketGuard(Deadline(5)) as outer:
        with SocketGuard(Deadline(5)) as inner:
            assert current_guard() is inner
            thread = threading.Thread(target=lambda: seen.append(current_guard()))
            thread.start()
            thread.join()
        assert current_guard() is outer
    assert current_guard() is None
    assert seen == [None]


def test_a_call_that_cannot_be_bounded_is_abandoned_at_the_deadline() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="within the deadline"):
        call_within(lambda: release.wait(10), Deadline(0.3), what="a stuck credential provider")
    assert time.monotonic() - started < 0.8
    release.set()


def test_a_bounded_call_returns_its_value_or_raises_its_own_error() -> None:
    assert call_within(lambda: 42, Deadline(1), what="x") == 42
    with pytest.raises(KeyError):
        call_within(lambda: {}["missing"], Deadline(1), what="x")
    with pytest.raises(DeadlineExceeded):
        call_within(lambda: 1, Deadline(0), what="x")  # no time left: not even started


def test_the_watchdog_works_again_in_a_forked_child() -> None:
    """Task processes are forked: the watchdog thread does not survive the fork, and is started again."""
    with fault_server("drip_headers") as server:
        session = _session()

        def drip_past_a_short_deadline() -> bool:
            started = time.monotonic()
            with SocketGuard(Deadline(0.3)) as guard, contextlib.suppress(requests.RequestException):
                session.get(server.url, timeout=5).raise_for_status()
            return guard.expired and time.monotonic() - started < 1.5

        assert drip_past_a_short_deadline()  # the parent's watchdog thread runs now
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0 if drip_past_a_short_deadline() else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
