"""One resolution, in the order the design reads: secret source -> credential -> token -> connection.

:meth:`Resolver.connection` returns what a resolution found: None (no secret), a plain connection's value
(exactly what the official backend returns), or a :class:`Resolution` of a Kong connection (the token,
where the secret and the token came from, the JSON for Airflow). The token itself is chosen by the runtime's
:class:`~kong_secrets_backend.tokens.keeper.TokenKeeper`.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kong_secrets_backend.airflow_bridge import audit
from kong_secrets_backend.airflow_bridge.task import current_task
from kong_secrets_backend.airflow_bridge.trace_headers import correlation_headers
from kong_secrets_backend.connection import (
    KongConnection,
    credentials_path,
    parse_kong_auth,
    plain_conn_value,
    shared_fields,
)
from kong_secrets_backend.errors import SourceError
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.masking import mask
from kong_secrets_backend.sources.paths import validate_secret_id
from kong_secrets_backend.tokens import Origin
from kong_secrets_backend.transport.deadline import Deadline

if TYPE_CHECKING:
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
        key = ("connections", conn_id, team_name or "")
        conn = rt.keeper.current(key, max_age=rt.settings.credential_cache_ttl)
        if conn is None:
            try:
                loaded = self._load(conn_id, team_name, deadline)
            except SourceError as exc:
                loaded = self._last_read(key, conn_id, exc)
            if not isinstance(loaded, KongConnection):
                return loaded  # None, or a plain connection exactly as the official backend returns it
            rt.keeper.adopt(key, loaded)
            conn = loaded
        task = current_task()
        conn.check_access(conn_id, task)
        reader = _Reader(self, conn_id, team_name)
        served = rt.keeper.serve(key, conn, deadline, task=task, reader=reader, label=f"conn_id {conn_id}")
        if served.connection is not conn:  # a re-read or pending version: its restrictions hold too
            served.connection.check_access(conn_id, task)
        mask(served.token.value)
        audit.record(conn_id, served.connection, served.token, served.origin, task)
        settings = rt.settings
        headers = correlation_headers(traceparent=settings.traceparent, task_headers=settings.task_headers, task=task)
        return self._resolution(key, conn_id, served, headers)

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
        self, conn_id: str, team_name: str | None, deadline: Deadline, *, fresh: bool = False
    ) -> KongConnection | str | None:
        """Read and parse the connection; ``fresh`` also reads its shared credential again, bypassing the cache."""
        record = self.runtime.source.read("connections", conn_id, deadline, team_name)
        if record is None:
            return None
        if "kong_auth" not in record.data:  # plain connections are read every time, like the official backends
            return record.plain if record.plain is not None else plain_conn_value(record.data)
        path = credentials_path(record)
        shared = None if path is None else self._shared_credential(path, deadline, fresh=fresh)
        return self._kong_connection(record, shared)

    def _last_read(self, key: tuple[str, ...], conn_id: str, exc: SourceError) -> KongConnection:
        """The source is down: keep serving the Kong connection read last (its token may well be valid)."""
        last = self.runtime.keeper.last(key)
        if last is None:
            raise exc
        log.warning(
            "kong-secrets-backend: %s; serving conn_id %s from the secret last read at %s",
            exc,
            conn_id,
            last.record.path,
        )
        return last

    def _kong_connection(self, record: SecretRecord, shared: SecretRecord | None) -> KongConnection:
        rt = self.runtime
        auth = parse_kong_auth(record, shared=shared, settings=rt.settings)
        mask(*auth.credential.secret_values())
        flow = build_flow(auth.credential, http=rt.http, settings=rt.settings, source=rt.source)
        return KongConnection(record=record, auth=auth, flow=flow)

    def _shared_credential(self, path: str, deadline: Deadline, *, fresh: bool = False) -> SecretRecord:
        validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
        key = ("credentials", path)
        cached = None if fresh else self.runtime.records.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return,unused-ignore]
        record = self.runtime.source.read_path(path, deadline)
        if record is None:
            raise SourceError(f"kong_auth.credentials_path {path} holds no secret", reason="credentials_missing")
        mask(*(v for v in shared_fields(record).values() if isinstance(v, str)))
        self.runtime.records[key] = record
        return record

    def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
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
            pending_path = credentials_path(record)
            shared = None if pending_path is None else self._shared_credential(pending_path, deadline)
            return self._kong_connection(record, shared)
        shared = read_pending("credentials", path, deadline)
        if shared is None:
            return None
        mask(*(v for v in shared_fields(shared).values() if isinstance(v, str)))
        return self._kong_connection(current.record, shared)

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
    """How the token keeper reads one connection again (a CredentialReader)."""

    __slots__ = ("conn_id", "resolver", "team_name")  # built on every resolution (the hot path)

    def __init__(self, resolver: Resolver, conn_id: str, team_name: str | None) -> None:
        self.resolver, self.conn_id, self.team_name = resolver, conn_id, team_name

    def reread(self, deadline: Deadline) -> KongConnection | None:
        loaded = self.resolver._load(self.conn_id, self.team_name, deadline, fresh=True)
        return loaded if isinstance(loaded, KongConnection) else None

    def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
        return self.resolver.pending(current, deadline)


def _value_field(record: SecretRecord | None) -> str | None:
    if record is None or not record.data:
        return None
    return record.data.get("value")
