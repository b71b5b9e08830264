"""Wall-clock bounds for blocking I/O: what a per-read socket timeout cannot do.

A socket timeout bounds one ``recv``; a peer that drips a byte a second (status line, headers, body, TLS
handshake) never trips it. Two tools close that gap:

- :class:`SocketGuard`: while a guard is active in a thread, every socket that a guarded ``requests``
  session (:func:`guarded_adapter`) opens or reuses in that thread is watched; when the deadline passes, the
  process's one watchdog thread shuts those sockets down, so that a read blocked in the TLS handshake, the
  status line, the headers or the body returns at once. ``requests`` (the identity provider transport) and
  hvac (Vault) go through it. urllib3's own retries are bounded by the same deadline (``DeadlineRetry``).
- :func:`call_within`: a call that cannot be bounded from outside (botocore: its credential chain, its
  connections) runs in a worker thread, and the caller stops waiting for it at the deadline. The worker
  is abandoned, not killed; it ends when the library's own timeouts fire.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from kong_secrets_backend.errors import DeadlineExceeded

if TYPE_CHECKING:
    from requests.adapters import HTTPAdapter

    from kong_secrets_backend.transport.deadline import Deadline

T = TypeVar("T")

_local = threading.local()


def current_guard() -> SocketGuard | None:
    """The innermost guard active in this thread, or None."""
    return getattr(_local, "guard", None)


class SocketGuard:
    """Shuts down every socket used in this thread while the guard is active once ``deadline`` passes."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.expired = False
        self._socks: list[socket.socket] = []  # duplicates of the watched sockets' descriptors
        self._lock = threading.Lock()
        self._outer: SocketGuard | None = None
        self._closed = False

    def __enter__(self) -> SocketGuard:
        self._outer = current_guard()
        _local.guard = self
        left = self.deadline.remaining()
        if left <= 0:
            self.expired = True
        else:
            _WATCHDOG.schedule(time.monotonic() + left, self)
        return self

    def __exit__(self, *exc: object) -> None:
        _local.guard = self._outer
        with self._lock:
            socks, self._socks, self._closed = self._socks, [], True
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def watch(self, sock: socket.socket) -> None:
        """Watch ``sock`` (a plain or TLS socket); one watched after the deadline is shut down at once."""
        guard: SocketGuard | None = self
        while guard is not None:
            guard._watch(sock)
            guard = guard._outer

    def _watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: shutdown() acts on the socket itself, whichever descriptor it comes through,
        # and the duplicate stays valid when ssl wraps (and detaches) the original socket object.
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        with self._lock:
            if not self._closed and not self.expired:
                self._socks.append(dup)
                return
            expired = self.expired
        if expired:
            _shutdown(dup)
        with contextlib.suppress(OSError):
            dup.close()

    def _expire(self) -> None:
        with self._lock:
            if self._closed:  # the call ended in time
                return
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def out_of_time(self, wait: float = 0.0) -> bool:
        """True when the deadline has passed, or would pass during a wait of ``wait`` seconds."""
        return self.expired or self.deadline.remaining() <= wait


class _Watchdog:
    """One thread per process that expires guards at their deadlines (a thread per call would cost more)."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)  # the thread does not survive a fork; its lock may be held

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, SocketGuard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, guard: SocketGuard) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kong-secrets-backend-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is guard:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2]._closed:  # ended in time: nothing to do
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        guard = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            guard._expire()


_WATCHDOG = _Watchdog()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _QuietWhenCutShort(logging.Filter):
    """urllib3 logs a WARNING with a traceback for headers a guard cut short at the deadline: the resolution
    reports the deadline itself, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        guard = current_guard()
        return guard is None or not guard.expired


_QUIET_WHEN_CUT_SHORT = _QuietWhenCutShort()


def _watch_current(sock: Any) -> None:
    guard = current_guard()
    if guard is not None and sock is not None:
        guard.watch(sock)


def guarded_adapter(**retry: Any) -> HTTPAdapter:
    """A requests adapter whose connections are watched by the thread's SocketGuard; with ``retry``
    (urllib3 ``Retry`` arguments), retries that stay inside the guard's deadline."""
    adapter_cls, retry_cls = _guarded_classes()
    return adapter_cls(max_retries=retry_cls(**retry)) if retry else adapter_cls()  # type: ignore[no-any-return]


@cache
def _guarded_classes() -> tuple[Any, Any]:
    """(adapter class, retry class), built on first use (requests and urllib3 are imported lazily)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.util.retry import Retry

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _watch_current(sock)  # before any TLS handshake on it
            return sock

        def request(self, *args: Any, **kwargs: Any) -> None:
            _watch_current(self.sock)  # a pooled connection, reused
            super().request(*args, **kwargs)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _watch_current(sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> None:
            _watch_current(self.sock)
            super().request(*args, **kwargs)

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    pools = {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}
    logger = logging.getLogger("urllib3.connection")
    if _QUIET_WHEN_CUT_SHORT not in logger.filters:
        logger.addFilter(_QUIET_WHEN_CUT_SHORT)

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(pools)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            if not proxy.lower().startswith("socks"):
                manager.pool_classes_by_scheme = dict(pools)
            return manager

    class DeadlineRetry(Retry):
        """urllib3 retries that give up when the guard's deadline has passed or would pass while waiting
        (the back-off, or a peer's Retry-After)."""

        def increment(
            self,
            method: str | None = None,
            url: str | None = None,
            response: Any = None,
            error: Exception | None = None,
            _pool: Any = None,
            _stacktrace: Any = None,
        ) -> Any:
            guard = current_guard()
            new = super().increment(method, url, response, error, _pool, _stacktrace)
            if guard is None:
                return new
            wait = new.get_backoff_time()
            if response is not None and self.respect_retry_after_header:
                wait = max(wait, new.get_retry_after(response) or 0.0)
            if guard.out_of_time(wait + 0.05):
                # no time for another attempt: exhaust the retries, so urllib3 ends as when they run out
                return Retry.increment(self.new(total=0), method, url, response, error, _pool, _stacktrace)
            return new

        def sleep(self, response: Any = None) -> None:
            guard = current_guard()
            if guard is None:
                super().sleep(response)
                return
            wait = self.get_backoff_time()
            if response is not None and self.respect_retry_after_header:
                wait = max(wait, self.get_retry_after(response) or 0.0)
            time.sleep(max(0.0, min(wait, guard.deadline.remaining())))

    return GuardedAdapter, DeadlineRetry


def call_within(call: Callable[[], T], deadline: Deadline, *, what: str) -> T:
    """``call()`` in a worker thread; raises DeadlineExceeded when it has not returned by the deadline (the
    worker is abandoned, and ends when the library's own timeouts fire). Its own exceptions are re-raised."""
    deadline.timeout(what=what)  # none left: do not start
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, name="kong-secrets-backend-io", daemon=True)
    worker.start()
    if not done.wait(max(0.0, deadline.remaining())):
        raise DeadlineExceeded(f"{what} did not finish within the deadline of {deadline.seconds:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
