"""One authenticated hvac client per process and settings, and the life of its Vault token.

- Log in on first use, reuse the token after (Runtime shares one session per settings in a process).
- Renew a renewable token on the first use after two thirds of its TTL have passed (``renew-self``).
  When a renewal no longer extends it by a useful amount (its max TTL is near), or the token is not
  renewable, log in again on the first use after that point instead.
- On a 403, log in again once (the token was revoked or expired early), as VaultBackend does.
- Never pile up tokens: a token replaced by a new login is revoked first (``revoke-self``, best
  effort). Tokens the backend did not create (``auth_type`` ``token``, and the environment token that
  ``azure``/``radius`` rely on) are never revoked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import DeadlineExceeded, KongAuthError, SourceError
from kong_secrets_backend.sources.vault_auth import Lease, lease_of, lease_of_lookup, login, read_secret_file
from kong_secrets_backend.transport.guard import SocketGuard, call_within, guarded_adapter

if TYPE_CHECKING:
    import hvac
    import requests

    from kong_secrets_backend.sources.vault_settings import VaultSettings
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0  # seconds per Vault request, always further bounded by the resolution deadline
RENEW_AFTER = 2 / 3  # renew (or log in again) once this fraction of the token's TTL has passed
RETRY_AFTER_FAILURE = 5.0  # seconds before trying again when a renewal or a new login failed
# Logins that wait for more than Vault (a cloud SDK's credential chain, its metadata service), which the socket
# guard cannot bound: they run in a worker thread that the resolution stops waiting for at the deadline.
LOGINS_OUTSIDE_REQUESTS = frozenset({"aws_iam", "gcp"})


@dataclass
class _TokenClock:
    """When the current token expires and when it is due for renewal (monotonic seconds)."""

    granted: float  # the TTL Vault granted at login: the yardstick for "a useful renewal"
    renewable: bool
    expires_at: float
    due_at: float

    @classmethod
    def start(cls, lease: Lease | None, *, granted: float | None = None) -> _TokenClock | None:
        if lease is None or lease.ttl <= 0:
            return None  # unknown, or a token that never expires: nothing to do
        now = time.monotonic()
        return cls(
            granted=granted if granted is not None else lease.ttl,
            renewable=lease.renewable,
            expires_at=now + lease.ttl,
            due_at=now + lease.ttl * RENEW_AFTER,
        )


class VaultSession:
    """The process's hvac client for one VaultSettings: login, renewal, one re-login on 403, revocation."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._client: hvac.Client | None = None
        self._clock: _TokenClock | None = None
        self._http: requests.Session | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        # Observability and tests: what this process did with Vault tokens.
        self.logins = 0
        self.renewals = 0
        self.revocations = 0

    @property
    def client(self) -> hvac.Client | None:
        return self._client

    def after_fork(self) -> None:
        """In a forked child (runtime.py's at-fork hook): a new lock, since a vanished thread may have held it.
        The client and its sockets are replaced on first use (the pid check in ``_ready``)."""
        self._lock = threading.RLock()

    def call(self, operation: Callable[[hvac.Client], T], deadline: Deadline) -> T:
        """Run one Vault request with a ready client; on 403 log in again and retry once.

        Everything it waits for (the session lock, a login or renewal, the request, urllib3's retries) ends by
        the deadline: a SocketGuard shuts the connection down when it passes, whatever Vault does."""
        with SocketGuard(deadline) as guard:
            try:
                result = self._call(operation, deadline)
            except KongAuthError as exc:
                if isinstance(exc, DeadlineExceeded) or guard.expired:
                    raise self._deadline_error(deadline) from None
                raise
            except Exception:
                if guard.out_of_time():  # whatever the interrupted request turned into
                    raise self._deadline_error(deadline) from None
                raise
            if guard.expired:  # an answer cut short at the deadline (http.client takes truncated headers as complete)
                raise self._deadline_error(deadline)
            return result

    def _call(self, operation: Callable[[hvac.Client], T], deadline: Deadline) -> T:
        import hvac.exceptions

        client = self._ready(deadline)
        try:
            return operation(self._bounded(client, deadline))
        except hvac.exceptions.Forbidden:
            log.info("Vault answered 403; logging in again once")
            client = self._replace(deadline, stale=client)
            return operation(self._bounded(client, deadline))

    def _deadline_error(self, deadline: Deadline) -> SourceError:
        return SourceError(
            f"Vault at {self.settings.url} did not answer within the deadline of {deadline.seconds:g}s",
            reason="deadline",
        )

    @contextlib.contextmanager
    def _locked(self, deadline: Deadline) -> Iterator[None]:
        """The session lock, waited for at most until the deadline (another thread may be logging in)."""
        if not self._lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise DeadlineExceeded("timed out waiting for another thread's Vault login")
        try:
            yield
        finally:
            self._lock.release()

    # -- the client ----------------------------------------------------------------------------------

    def _ready(self, deadline: Deadline) -> hvac.Client:
        client, clock = self._client, self._clock
        if client is not None and self._pid == os.getpid() and (clock is None or time.monotonic() < clock.due_at):
            return client
        with self._locked(deadline):
            if self._pid != os.getpid():
                self._after_fork()
            if self._client is None:
                self._client, self._clock = self._login(deadline)
            elif self._clock is not None and time.monotonic() >= self._clock.due_at:
                self._refresh(deadline)
            return self._client

    def _replace(self, deadline: Deadline, *, stale: hvac.Client) -> hvac.Client:
        """Log in again, unless another thread already did since `stale` was handed out."""
        with self._locked(deadline):
            if self._client is not None and self._client is not stale:
                return self._client
            self._revoke(stale, deadline)
            self._client, self._clock = self._login(deadline)
            return self._client

    def _refresh(self, deadline: Deadline) -> None:
        """The token is due: renew it, or log in again when renewal cannot help. Called with the lock held."""
        import hvac.exceptions

        assert self._client is not None and self._clock is not None
        clock = self._clock
        if clock.renewable:
            try:
                lease = lease_of(self._bounded(self._client, deadline).auth.token.renew_self())
            except (hvac.exceptions.VaultError, OSError) as exc:
                log.info("Vault token renewal failed (%s); logging in again", type(exc).__name__)
                lease = None
            else:
                self.renewals += 1
            if lease is not None and lease.ttl > clock.granted * (1 - RENEW_AFTER):
                self._clock = _TokenClock.start(lease, granted=clock.granted)
                return
            if lease is not None and lease.ttl > 0:  # extended, but by too little: its max TTL is near
                clock.renewable = False
                clock.expires_at = time.monotonic() + lease.ttl
        if not self.settings.auth.renews_by_login:
            self._reload_static_token(deadline)
            return
        try:
            stale = self._client
            client, new_clock = self._login(deadline)
        except Exception as exc:
            if time.monotonic() < clock.expires_at:
                log.warning("Vault login to replace an expiring token failed (%s); keeping it", type(exc).__name__)
                clock.due_at = time.monotonic() + RETRY_AFTER_FAILURE
                return
            raise
        self._revoke(stale, deadline)
        self._client, self._clock = client, new_clock

    def _reload_static_token(self, deadline: Deadline) -> None:
        """A token the backend did not create is due: read token_path again (an agent may have rotated it)."""
        assert self._client is not None and self._clock is not None
        path = self.settings.auth.params.get("token_path") if self.settings.auth.type == "token" else None
        if path:
            token = read_secret_file(path, "token_path")
            if token != self._client.token:
                self._client.token = token
                self._clock = _TokenClock.start(self._lookup(self._client, deadline))
                return
        self._clock.due_at = math.inf if not path else time.monotonic() + RETRY_AFTER_FAILURE

    def _login(self, deadline: Deadline) -> tuple[hvac.Client, _TokenClock | None]:
        import hvac
        import hvac.exceptions

        settings = self.settings
        auth = settings.auth
        # A method that logs in starts from no token: never send the environment's (VAULT_TOKEN, ~/.vault-token)
        # along with the login. azure/radius rely on it, as with VaultBackend (see vault_auth.py).
        start = {"token": ""} if auth.renews_by_login else {}
        client = hvac.Client(url=settings.url, session=self._session(), **start, **self._client_kwargs(deadline))
        try:
            if auth.type in LOGINS_OUTSIDE_REQUESTS:  # boto3's or google-auth's chain: abandoned at the deadline
                lease = call_within(lambda: login(client, auth), deadline, what=f"Vault login ({auth.type})")
            else:
                lease = login(client, auth)
            if lease is None and auth.type == "token":
                lease = self._lookup(client, deadline)
        except hvac.exceptions.VaultError as exc:
            raise SourceError(
                f"Vault login with auth_type {auth.type!r} failed: {type(exc).__name__}", reason="vault_login"
            ) from exc
        except OSError as exc:
            raise unreachable_error(settings.url, "during login", exc) from exc
        if not client.token:
            raise SourceError(f"Vault login with auth_type {auth.type!r} produced no token", reason="vault_login")
        mask(client.token)
        self.logins += 1
        return client, _TokenClock.start(lease)

    def _lookup(self, client: hvac.Client, deadline: Deadline) -> Lease | None:
        """The lease of a token given to us (lookup-self): best effort, a token that may not look itself up is fine."""
        import hvac.exceptions

        try:
            return lease_of_lookup(self._bounded(client, deadline).auth.token.lookup_self())
        except (hvac.exceptions.VaultError, OSError):
            return None

    def _revoke(self, stale: hvac.Client, deadline: Deadline) -> None:
        """Revoke a token this backend created and no longer uses. Best effort: it may already be dead."""
        import hvac.exceptions

        if not self.settings.auth.renews_by_login or not stale.token:
            return
        try:
            self._bounded(stale, deadline).auth.token.revoke_self()
            self.revocations += 1
        except (hvac.exceptions.VaultError, OSError) as exc:
            log.debug("could not revoke the replaced Vault token: %s", type(exc).__name__)

    # -- plumbing ------------------------------------------------------------------------------------

    def _client_kwargs(self, deadline: Deadline) -> dict[str, Any]:
        kwargs = {k: v for k, v in self.settings.client_kwargs.items() if k != "timeout"}
        kwargs["timeout"] = deadline.timeout(self._timeout_cap(), what="Vault login")
        return kwargs

    def _timeout_cap(self) -> float:
        return float(self.settings.client_kwargs.get("timeout", DEFAULT_TIMEOUT))

    def _bounded(self, client: hvac.Client, deadline: Deadline) -> hvac.Client:
        # hvac keeps per-request options in the adapter; bound this request by what is left of the deadline.
        client.adapter._kwargs["timeout"] = deadline.timeout(self._timeout_cap(), what="a Vault request")
        return client

    def _session(self) -> requests.Session:
        """One HTTP session per process, with the retries VaultBackend sets up (412/500/502/503, three times),
        its connections watched by the SocketGuard of the request in flight."""
        if self._http is None:
            import requests

            session = requests.Session()
            # VaultBackend's retries, bounded by the resolution deadline (urllib3 would give each the full timeout)
            adapter = guarded_adapter(
                total=3, backoff_factor=0.1, status_forcelist=[412, 500, 502, 503], raise_on_status=False
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            kwargs = self.settings.client_kwargs
            session.verify = kwargs.get("verify", session.verify)
            session.cert = kwargs.get("cert", session.cert)
            session.proxies = kwargs.get("proxies", session.proxies)
            self._http = session
        return self._http

    def _after_fork(self) -> None:
        """A forked child keeps the parent's token (no new login) but must not share its sockets."""
        self._pid = os.getpid()
        self._http = None
        if self._client is not None:
            import hvac

            token = self._client.token
            self._client = hvac.Client(
                url=self.settings.url,
                token=token,
                session=self._session(),
                **{k: v for k, v in self.settings.client_kwargs.items()},
            )


def unreachable_error(url: str | None, where: str, exc: OSError) -> SourceError:
    """A network failure, named; a TLS failure says what usually fixes it."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return SourceError(
            f"TLS with Vault at {url} failed {where} (is its CA in `verify`? is the client certificate trusted?)",
            reason="vault_tls",
        )
    return SourceError(f"Vault at {url} unreachable {where}: {type(exc).__name__}", reason="vault_unreachable")
