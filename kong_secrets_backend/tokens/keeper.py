"""Which token a Kong connection serves: the one owner of that decision.

The broker (:mod:`.broker`) answers "a token for this credential": cached while FRESH, refreshed once
when STALE, minted when INVALID. The keeper answers "which credential, and so which token, does this
connection serve now", with the rules that keep a run alive through a rotation:

- **adoption**: each freshly read version of a connection is adopted; if only its secret material
  changed (a rotation), the version it replaced is remembered;
- **rotation**: the replaced version's token is served until it leaves its FRESH state, so a rotation
  costs no mint and cannot fail while the identity provider is still learning the new secret; if the
  new version is refused meanwhile, the old token is served while it is usable;
- **retry**: the first resolution of a task try > 1 mints a fresh token (the commonest reason for the
  retry is a 401 from a token that expired or was revoked);
- **refused credential**: when the identity provider refuses the credential held, the connection is read
  again bypassing every cache and, if it changed, tried once; if it did not change, the source's pending
  version (AWS Secrets Manager's AWSPENDING) is tried once.

What the keeper holds per connection is bounded (LRU) and its clock is injectable (the broker's), so
its tests run without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from kong_secrets_backend.cache.bounded import BoundedMap
from kong_secrets_backend.errors import AccessDenied, KongAuthError, TokenEndpointError
from kong_secrets_backend.flows.identity import token_key
from kong_secrets_backend.tokens import Origin

if TYPE_CHECKING:
    from kong_secrets_backend.airflow_bridge.task import TaskIdentity
    from kong_secrets_backend.connection import KongConnection
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.tokens.broker import TokenBroker
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16_384  # connections held per runtime: far above a realistic working set
MAX_RETRIED_TRIES = 16_384  # task tries remembered as having minted afresh


class CredentialReader(Protocol):
    """How the keeper reads a connection again; the resolver provides it."""

    def reread(self, deadline: Deadline) -> KongConnection | None:
        """The connection read again from the source, its shared credential too, bypassing every cache."""

    def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
        """The connection with the source's pending credential version, or None where there is none."""


class Served(NamedTuple):  # a tuple: built on every resolution (the hot path)
    connection: KongConnection  # the version whose token is served (a re-read may replace the one asked for)
    token: Token
    origin: Origin


@dataclass(frozen=True)
class _Held:
    connection: KongConnection  # the version adopted last
    read_at: float  # when it was read (monotonic clock): fresh for credential_cache_ttl
    previous: TokenFlow | None = None  # the version a rotation replaced: its token is served until it ages


def is_rotation(old: KongConnection, new: KongConnection) -> bool:
    """Only the secret material (or the version) changed: same flow, endpoint, client, scope, audience...

    A rotation keeps serving the old token until it nears expiry; any other change takes effect at once.
    """
    if token_key(old.flow) == token_key(new.flow):  # the in-process identity: a new secret is a new key
        return False
    a, b = old.credential, new.credential
    if type(a) is not type(b) or not is_dataclass(a) or a.header_name != b.header_name:
        return False
    public = [f.name for f in fields(a) if f.repr and f.name != "version"]
    return all(getattr(a, name) == getattr(b, name) for name in public)


def _credential_refused(exc: TokenEndpointError) -> bool:
    return exc.oauth_error in ("invalid_client", "unauthorized_client") or exc.status == 401


class TokenKeeper:
    def __init__(self, broker: TokenBroker, *, monotonic: Callable[[], float] | None = None) -> None:
        import time

        self.broker = broker
        self.monotonic = monotonic or time.monotonic
        self._held: BoundedMap[tuple[str, ...], _Held] = BoundedMap(MAX_CONNECTIONS)
        self._retried: BoundedMap[tuple[Any, ...], bool] = BoundedMap(MAX_RETRIED_TRIES)

    # -- which version of a connection is current ----------------------------------------------------

    def current(self, key: tuple[str, ...], max_age: float) -> KongConnection | None:
        """The connection adopted last for key if it was read less than ``max_age`` seconds ago."""
        held = self._held.get(key)
        if held is None or self.monotonic() - held.read_at >= max_age:
            return None
        return held.connection

    def last(self, key: tuple[str, ...]) -> KongConnection | None:
        """The connection adopted last for key, however old (served while the source is down)."""
        held = self._held.get(key)
        return None if held is None else held.connection

    def adopt(self, key: tuple[str, ...], connection: KongConnection) -> None:
        """A version of the connection was just read; if it rotates the held one's secret, remember that one."""
        held = self._held.get(key)
        previous = None
        if held is not None:
            if held.connection is connection:  # the last read again (the source is down): keep it as it is
                previous = held.previous
            elif is_rotation(held.connection, connection):
                previous = held.connection.flow
        self._held[key] = _Held(connection, self.monotonic(), previous)

    # -- which token it serves -----------------------------------------------------------------------

    def serve(
        self,
        key: tuple[str, ...],
        connection: KongConnection,
        deadline: Deadline,
        *,
        task: TaskIdentity | None,
        reader: CredentialReader,
        label: str,
    ) -> Served:
        flow = connection.flow
        if flow.static:  # key_auth: nothing to mint or cache
            return Served(connection, flow.mint(deadline), Origin.STATIC)
        held = self._held.get(key)
        previous = held.previous if held is not None and held.connection is connection else None
        if previous is not None:
            old = self.broker.peek(previous)
            if old is not None and self.broker.peek(flow) is None:
                return Served(connection, old, Origin.PREVIOUS_VERSION)
        try:
            obtained = self.broker.obtain(flow, deadline, label=label, force=self._first_of_a_retry(task, flow))
        except TokenEndpointError as refused:
            return self._after_refusal(key, connection, previous, refused, deadline, reader, label)
        if previous is not None:
            self._settle(key, connection)
        return Served(connection, obtained.token, obtained.origin)

    def _after_refusal(
        self,
        key: tuple[str, ...],
        connection: KongConnection,
        previous: TokenFlow | None,
        refused: TokenEndpointError,
        deadline: Deadline,
        reader: CredentialReader,
        label: str,
    ) -> Served:
        if previous is not None and (old := self.broker.peek(previous, usable=True)) is not None:
            log.warning(
                "kong-secrets-backend: the new credential version of %s was refused (%s); serving the previous "
                "version's token, valid for %.0fs more",
                label,
                refused,
                old.remaining(self.broker.clock()),
            )
            return Served(connection, old, Origin.PREVIOUS_VERSION)
        if not _credential_refused(refused):
            raise refused
        # The identity provider refused the credential held: it may have been rotated under us.
        reread = reader.reread(deadline)
        if reread is None:
            raise refused
        if token_key(reread.flow) != token_key(connection.flow):
            log.info("kong-secrets-backend: %s: the credential changed at the source; retrying once", label)
            self._settle(key, reread)
            obtained = self.broker.obtain(reread.flow, deadline, label=label)
            return Served(reread, obtained.token, obtained.origin)
        # Unchanged: a rotation may have changed the IdP before it moved the source's current version
        # (AWS Secrets Manager: AWSPENDING is written and set at the IdP, then AWSCURRENT moves to it).
        try:
            pending = reader.pending(reread, deadline)
        except AccessDenied:  # the pending version's allowed_dags refuse this task: that is the answer
            raise
        except KongAuthError as unreadable:  # the refusal stays the error to report
            log.warning("kong-secrets-backend: %s: cannot use the pending credential version (%s)", label, unreadable)
            pending = None
        if pending is None or token_key(pending.flow) == token_key(connection.flow):
            raise refused
        log.info(
            "kong-secrets-backend: %s: the identity provider refused the current credential; trying the pending "
            "version at %s once",
            label,
            pending.record.path,
        )
        try:
            obtained = self.broker.obtain(pending.flow, deadline, label=label)
        except TokenEndpointError as also_refused:
            log.warning(
                "kong-secrets-backend: %s: the pending credential version was refused too (%s)", label, also_refused
            )
            raise refused from None
        self._settle(key, pending)
        return Served(pending, obtained.token, obtained.origin)

    def _settle(self, key: tuple[str, ...], connection: KongConnection) -> None:
        """The connection's own token is in hand: it is the current version, with no previous one to serve."""
        held = self._held.get(key)
        read_at = held.read_at if held is not None and held.connection is connection else self.monotonic()
        self._held[key] = _Held(connection, read_at, None)

    def _first_of_a_retry(self, task: TaskIdentity | None, flow: TokenFlow) -> bool:
        """True once per task try > 1 and credential."""
        if task is None or not task.try_number or task.try_number <= 1:
            return False
        marker = (task.dag_id, task.task_id, task.run_id, task.map_index, task.try_number, token_key(flow))
        return self._retried.add(marker, True)

    def after_fork(self) -> None:
        self._held.after_fork()
        self._retried.after_fork()


__all__ = ["CredentialReader", "Served", "TokenKeeper", "is_rotation"]
