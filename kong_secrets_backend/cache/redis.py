"""``token_cache: "redis://..."`` / ``"rediss://..."``: a token cache shared by the fleet, with redis-py.

- One sealed entry per credential (:mod:`~kong_secrets_backend.cache.sealing`) under
  ``kong-secrets-backend:token:<name>``, with a TTL of the token's remaining life (``SET PX``).
- Single flight across hosts: redis-py's ``Lock`` (``SET NX PX`` with a random owner token, released by a
  compare-and-delete script), held at most as long as the minting resolution may take.
- Redis down or refusing: the resolution mints locally; one WARNING per outage, and Redis is not asked again
  for a few seconds, so an outage costs no connection attempt per resolution. A resolution never fails
  because of Redis.
- The URL's password is masked and never logged (messages show ``redis://host:port/db``).

redis-py is imported on first use (``pip install 'kong-secrets-backend[redis]'``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.cache import sealing
from kong_secrets_backend.tokens import Token

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

PREFIX = "kong-secrets-backend:"
# A Redis round trip on a LAN is well under a millisecond. A Redis that stalls costs one resolution at most
# this once (a timeout is not retried, and Redis is then left alone for RETRY_AFTER), which keeps even a
# resolution that meets it at the end of its deadline within the deadline's one-second grace.
SOCKET_TIMEOUT = 0.5
RETRY_AFTER = 5.0  # after a failure, Redis is left alone this long (seconds)
TLS_CHECKS = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}  # rediss://, always
_LOCK_POLL = 0.02  # while another host mints: at most 50 SET NX a second per waiting process


def redacted_url(url: str) -> str:
    """``scheme://host:port/db`` without user info or query (which may hold a password)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisTokenCache:
    def __init__(self, url: str) -> None:
        self._url = url
        self.location = redacted_url(url)
        password = urlsplit(url).password
        mask(unquote(password) if password else None)
        self._client: redis.Redis | None = None
        self._client_lock = threading.Lock()
        self._down_until = 0.0
        self._outage = False  # a WARNING was logged for the current outage

    def __repr__(self) -> str:
        return f"RedisTokenCache({self.location!r})"

    # -- the TokenCache protocol ------------------------------------------------------------------

    def get(self, key: str, secret: bytes) -> Token | None:
        client = self._available()
        if client is None:
            return None
        try:
            blob = client.get(PREFIX + "token:" + sealing.entry_name(key))
        except Exception as exc:
            self._failed(exc)
            return None
        self._succeeded()
        token = sealing.unseal(blob if isinstance(blob, bytes) else None, key=key, secret=secret)
        if blob is not None and token is None:
            log.debug("kong-secrets-backend: ignoring a Redis token entry not sealed for this credential")
        return None if token is None or token.expired() else token

    def put(self, key: str, secret: bytes, token: Token) -> None:
        ttl_ms = int(token.remaining() * 1000)
        client = self._available()
        if client is None or ttl_ms <= 0:
            return
        blob = sealing.seal(token, key=key, secret=secret)
        try:
            client.set(PREFIX + "token:" + sealing.entry_name(key), blob, px=ttl_ms)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()

    @contextmanager
    def lock(self, key: str, *, timeout: float, hold: float) -> Iterator[bool]:
        """``SET NX PX`` lock; yields True also when Redis is down (nothing to coordinate with: mint locally)."""
        client = self._available()
        if client is None:
            yield True
            return
        lock = client.lock(
            PREFIX + "lock:" + sealing.entry_name(key),
            timeout=max(hold, 0.1),
            sleep=_LOCK_POLL,
            blocking=timeout > 0,
            blocking_timeout=max(timeout, 0.0),
            thread_local=False,
        )
        try:
            acquired = bool(lock.acquire())
        except Exception as exc:
            self._failed(exc)
            yield True
            return
        self._succeeded()
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):
                    lock.release()

    def after_fork(self) -> None:
        """In a forked child: a new client and connection pool (never share the parent's sockets)."""
        self._client = None
        self._client_lock = threading.Lock()

    # -- the client and outages -------------------------------------------------------------------

    def _available(self) -> redis.Redis | None:
        if self._down_until and time.monotonic() < self._down_until:
            return None
        client = self._client
        if client is not None:
            return client
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = _connect(self._url)
                except Exception as exc:  # a URL redis-py refuses, or redis-py missing
                    self._failed(exc)
                    return None
            return self._client

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER
        if not self._outage:
            self._outage = True
            log.warning(
                "kong-secrets-backend: token cache Redis at %s is unavailable (%s); minting tokens locally "
                "until it is back",
                self.location,
                type(exc).__name__,
            )

    def _succeeded(self) -> None:
        if self._outage:
            self._outage = False
            self._down_until = 0.0
            log.info("kong-secrets-backend: token cache Redis at %s is available again", self.location)


def _connect(url: str) -> Any:
    """A client for the URL; for ``rediss://`` the server's certificate *and host name* are checked whatever the
    redis-py version (5.x did not check the host name by default) and whatever the URL's query says."""
    import redis

    pool = redis.ConnectionPool.from_url(url, **_client_kwargs())
    if issubclass(pool.connection_class, redis.SSLConnection):
        pool.connection_kwargs.update(TLS_CHECKS)
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as Redis.from_url does: the client owns its pool
    return client


@cache
def _client_kwargs() -> dict[str, Any]:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    kwargs: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        # one immediate retry of a pooled connection the server closed, no backoff; a timeout is not retried
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    # No CLIENT SETINFO on connect: redis-py reads its own version from the package metadata for it, which
    # costs more than the token cache's commands. Nor the maintenance-notification handshake (redis-py 7+).
    params = inspect.signature(redis.Redis.__init__).parameters
    if "driver_info" in params:
        kwargs["driver_info"] = None
    elif "lib_name" in params:
        kwargs["lib_name"] = kwargs["lib_version"] = None
    if "maint_notifications_config" in params:
        from redis.maint_notifications import MaintNotificationsConfig

        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return kwargs
