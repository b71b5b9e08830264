"""One resolution, in the order the design reads: secret source -> credential -> token -> connection.

:meth:`Resolver.connection` returns what a resolution found: None (no secret), a plain connection's value
(exactly what the official backend returns), or a :class:`Resolution` of a Kong connection (the token,
where the secret and the token came from, the JSON for Airflow). The token itself is chosen by the runtime's
:class:`~kong_secrets_backend.tokens.keeper.TokenKeeper`.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kong_secrets_backend.airflow_bridge import audit
from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.airflow_bridge.task import current_task
from kong_secrets_backend.airflow_bridge.trace_headers import correlation_headers
from kong_secrets_backend.connection import (
    KongConnection,
    check_credentials_path,
    credentials_path,
    is_per_dag,
    parse_kong_auth,
    plain_conn_value,
    scope_set,
)
from kong_secrets_backend.errors import AccessDenied, SourceError
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.sources.paths import validate_secret_id
from kong_secrets_backend.tokens import Origin
from kong_secrets_backend.transport.deadline import Deadline

if TYPE_CHECKING:
    from kong_secrets_backend.airflow_bridge.task import TaskIdentity
    from kong_secrets_backend.sources import SecretRecord
    from kong_secrets_backend.state import Runtime
    from kong_secrets_backend.tokens import Token
    from kong_secrets_backend.tokens.keeper import Served

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """A resolved Kong connection: what was read, which token was served and from where, what Airflow gets."""

    conn_id: str
    path: str  # the connection secret's path at the source
    version: str | None  # the credential's version (the shared credential's path@version when shared)
    flow: str
    header_name: str
    token: Token  # its value never appears in a repr
    origin: Origin  # minted, a cache tier, the previous credential version, or static
    cache_tier: str | None  # "memory", "file" or "redis" when the token came from a cache
    conn_value: str = field(repr=False)  # the JSON for Connection.from_json (holds the token)

    @property
    def minted(self) -> bool:
        return self.origin is Origin.MINTED


class Resolver:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- connections ------------------------------------------------------------------------------

    def connection(self, conn_id: str, team_name: str | None = None) -> Resolution | str | None:
        validate_secret_id(conn_id, kind="conn_id")
        rt = self.runtime
        deadline = Deadline(rt.settings.deadline)
        task = current_task()
        found = self._current(("connections", conn_id, team_name or ""), conn_id, team_name, task, deadline)
        if not isinstance(found, tuple):
            return found  # None, or a plain connection exactly as the official backend returns it
        key, conn = found
        conn.check_access(conn_id, task)
        key, scoped = self._for_task(key, conn, task)
        if scoped is not conn:  # a task-scoped variant, maybe of a newer version (a refused credential re-read)
            scoped.check_access(conn_id, task)
            conn = scoped
        reader = _Reader(self, conn_id, team_name, task)
        served = rt.keeper.serve(key, conn, deadline, task=task, reader=reader, label=f"conn_id {conn_id}")
        if served.connection is not conn:  # a re-read or pending version: its restrictions hold too
            served.connection.check_access(conn_id, task)
        audit.record(conn_id, served.connection, served.token, served.origin, task)
        settings = rt.settings
        headers = correlation_headers(traceparent=settings.traceparent, task_headers=settings.task_headers, task=task)
        return self._resolution(key, conn_id, served, headers)

    def _current(
        self, key: tuple[str, ...], conn_id: str, team_name: str | None, task: TaskIdentity | None, deadline: Deadline
    ) -> tuple[tuple[str, ...], KongConnection] | str | None:
        """The connection's current version and its key: kept for credential_cache_ttl, then read again. A
        connection whose credential is chosen per DAG is kept per DAG."""
        keeper, ttl = self.runtime.keeper, self.runtime.settings.credential_cache_ttl
        keys = [key] if task is None else [key, (*key, "dag", task.dag_id)]
        for candidate in keys:
            conn = keeper.current(candidate, max_age=ttl)
            if conn is not None:
                return candidate, conn
        try:
            loaded = self._load(conn_id, team_name, deadline, task)
        except SourceError as exc:
            return self._last_read(keys, conn_id, exc)
        if not isinstance(loaded, KongConnection):
            return loaded
        key = keys[-1] if loaded.auth.per_dag else key  # a per-DAG credential loads only inside a task
        keeper.adopt(key, loaded)
        return key, loaded

    def _for_task(
        self, key: tuple[str, ...], conn: KongConnection, task: TaskIdentity | None
    ) -> tuple[tuple[str, ...], KongConnection]:
        """The connection as this task uses it: with the task's scope (``task_scopes``), which gives it tokens of
        its own; tasks whose scopes are equal as sets share them, across processes and hosts."""
        scope = _own_scope(conn, task)
        if scope is None:
            return key, conn
        scoped_key = (*key, "scope", scope)
        memo = self.runtime.scoped.get(scoped_key)
        if memo is not None and memo[0] is conn:  # the keeper may hold a newer one (a refused credential re-read)
            return scoped_key, self.runtime.keeper.last(scoped_key) or memo[1]
        scoped = self._with_scope(conn, scope)
        self.runtime.keeper.adopt(scoped_key, scoped)  # a rotation of the connection rotates its variants too
        self.runtime.scoped[scoped_key] = (conn, scoped)
        return scoped_key, scoped

    def as_task_uses_it(self, conn: KongConnection, task: TaskIdentity | None) -> KongConnection:
        """A freshly read version of the connection with the task's scope, for the token keeper."""
        scope = _own_scope(conn, task)
        return conn if scope is None else self._with_scope(conn, scope)

    def _with_scope(self, conn: KongConnection, scope: str) -> KongConnection:
        rt = self.runtime
        credential = replace(conn.credential, scope=scope)  # type: ignore[type-var]
        flow = build_flow(credential, http=rt.http, settings=rt.settings, source=rt.source)
        return KongConnection(record=conn.record, auth=replace(conn.auth, credential=credential), flow=flow)

    def conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        found = self.connection(conn_id, team_name)
        return found.conn_value if isinstance(found, Resolution) else found

    def _resolution(self, key: tuple[str, ...], conn_id: str, served: Served, headers: dict[str, str]) -> Resolution:
        """The Resolution, memoized per connection version, token, origin and correlation headers: a hot
        resolution builds neither the JSON for Airflow nor the result again."""
        memo = self.runtime.returned.get(key)
        if memo is not None and all(map(operator.is_, memo[0], served)) and memo[1] == headers:
            return memo[2]  # type: ignore[no-any-return]
        conn = served.connection
        mask(served.token.value)  # a new token for this process (a forked child starts without memos)
        resolution = Resolution(
            conn_id=conn_id,
            path=conn.record.path,
            version=conn.auth.version,
            flow=conn.flow.name,
            header_name=conn.header_name,
            token=served.token,
            origin=served.origin,
            cache_tier=self._tier(served.origin),
            conn_value=conn.conn_value(served.token, conn_id, headers),
        )
        self.runtime.returned[key] = (served, headers, resolution)
        return resolution

    def _tier(self, origin: Origin) -> str | None:
        if origin is Origin.MEMORY:
            return "memory"
        if origin is Origin.SHARED:
            mode = self.runtime.settings.token_cache
            return "file" if mode == "file" else "redis"
        return None

    def _load(
        self,
        conn_id: str,
        team_name: str | None,
        deadline: Deadline,
        task: TaskIdentity | None,
        *,
        fresh: bool = False,
    ) -> KongConnection | str | None:
        """Read and parse the connection; ``fresh`` also reads its shared credential again, bypassing the cache."""
        record = self.runtime.source.read("connections", conn_id, deadline, team_name)
        if record is None:
            return None
        if "kong_auth" not in record.data:  # plain connections are read every time, like the official backends
            return record.plain if record.plain is not None else plain_conn_value(record.data)
        path = credentials_path(record, task, self.runtime.settings)  # checked (fields, prefix) before it is read
        shared = None
        if path is not None:
            shared = self._shared_credential(path, deadline, fresh=fresh, per_dag=is_per_dag(record))
        return self._kong_connection(record, shared, task)

    def _last_read(
        self, keys: list[tuple[str, ...]], conn_id: str, exc: SourceError
    ) -> tuple[tuple[str, ...], KongConnection]:
        """The source is down: keep serving the Kong connection read last (its token may well be valid)."""
        for key in keys:
            last = self.runtime.keeper.last(key)
            if last is not None:
                log.warning(
                    "kong-secrets-backend: %s; serving conn_id %s from the secret last read at %s",
                    exc,
                    conn_id,
                    last.record.path,
                )
                self.runtime.keeper.adopt(key, last)
                return key, last
        raise exc

    def _kong_connection(
        self, record: SecretRecord, shared: SecretRecord | None, task: TaskIdentity | None
    ) -> KongConnection:
        rt = self.runtime
        auth = parse_kong_auth(record, shared=shared, settings=rt.settings, task=task)
        mask(*auth.credential.secret_values())
        flow = build_flow(auth.credential, http=rt.http, settings=rt.settings, source=rt.source)
        return KongConnection(record=record, auth=auth, flow=flow)

    def _shared_credential(
        self, path: str, deadline: Deadline, *, fresh: bool = False, per_dag: bool = False
    ) -> SecretRecord:
        self._check_credentials_path(path)
        key = ("credentials", path)
        cached = None if fresh else self.runtime.records.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return,unused-ignore]
        record = self.runtime.source.read_path(path, deadline)
        if record is None and per_dag:  # this DAG has no Kong consumer of its own
            raise AccessDenied(f"no Kong credential for this DAG at kong_auth.credentials_path {path}")
        if record is None:
            raise SourceError(f"kong_auth.credentials_path {path} holds no secret", reason="credentials_missing")
        self.runtime.records[key] = record
        return record

    def _check_credentials_path(self, path: str) -> None:
        """Before a shared credential is read: a safe path, under ``credentials_prefix``."""
        validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
        check_credentials_path(path, self.runtime.settings.credentials_prefix)

    def pending(
        self, current: KongConnection, deadline: Deadline, task: TaskIdentity | None = None
    ) -> KongConnection | None:
        """The connection with the source's pending credential version, or None: an optional source capability
        (``read_pending``: AWS Secrets Manager's AWSPENDING), of the connection secret or its shared credential."""
        read_pending = getattr(self.runtime.source, "read_pending", None)
        if read_pending is None:
            return None
        path = current.auth.credentials_path
        if path is None:
            record = read_pending("connections", current.record.path, deadline)
            if record is None or "kong_auth" not in record.data:
                return None
            pending_path = credentials_path(record, task, self.runtime.settings)
            shared = None if pending_path is None else self._shared_credential(pending_path, deadline)
            return self._kong_connection(record, shared, task)
        self._check_credentials_path(path)
        shared = read_pending("credentials", path, deadline)
        if shared is None:
            return None
        return self._kong_connection(current.record, shared, task)

    # -- variables and config: exactly VaultBackend's reading ------------------------------------

    def variable(self, key: str, team_name: str | None = None) -> str | None:
        validate_secret_id(key, kind="variable key")
        record = self.runtime.source.read("variables", key, Deadline(self.runtime.settings.deadline), team_name)
        return _value_field(record)

    def config(self, key: str) -> str | None:
        validate_secret_id(key, kind="config key")
        record = self.runtime.source.read("config", key, Deadline(self.runtime.settings.deadline))
        return _value_field(record)


class _Reader:
    """How the token keeper reads one connection again (a CredentialReader), as the task uses it.

    Each version it hands back has passed its own ``allowed_dags`` (the connection's and its shared
    credential's) for the running task before the keeper mints with it or adopts it.
    """

    __slots__ = ("conn_id", "resolver", "task", "team_name")  # built on every resolution (the hot path)

    def __init__(self, resolver: Resolver, conn_id: str, team_name: str | None, task: TaskIdentity | None) -> None:
        self.resolver, self.conn_id, self.team_name, self.task = resolver, conn_id, team_name, task

    def reread(self, deadline: Deadline) -> KongConnection | None:
        loaded = self.resolver._load(self.conn_id, self.team_name, deadline, self.task, fresh=True)
        if not isinstance(loaded, KongConnection):
            return None
        loaded.check_access(self.conn_id, self.task)
        return self.resolver.as_task_uses_it(loaded, self.task)

    def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
        found = self.resolver.pending(current, deadline, self.task)
        if found is None:
            return None
        found.check_access(self.conn_id, self.task)
        return self.resolver.as_task_uses_it(found, self.task)


def _own_scope(conn: KongConnection, task: TaskIdentity | None) -> str | None:
    """The task's scope (task_scopes), normalised, when it differs as a set from the block's; else None."""
    if not conn.auth.task_scopes:
        return None
    scope = scope_set(conn.auth.scope_for(task))
    if scope == scope_set(getattr(conn.credential, "scope", None)):
        return None
    return " ".join(sorted(scope))


def _value_field(record: SecretRecord | None) -> str | None:
    if record is None or not record.data:
        return None
    return record.data.get("value")
