"""One resolution, in the order the design reads: secret source -> credential -> token -> connection."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

from kong_secrets_backend import observe
from kong_secrets_backend.access import check_allowed, parse_allowed_dags
from kong_secrets_backend.airflow_bridge.task import current_task
from kong_secrets_backend.airflow_bridge.trace_headers import correlation_headers
from kong_secrets_backend.connection import check_kong_connection_fields, kong_conn_value, plain_conn_value
from kong_secrets_backend.errors import KongAuthError, SecretFormatError, SourceError, TokenEndpointError
from kong_secrets_backend.flows import build_flow, load_kong_auth, parse_credential
from kong_secrets_backend.masking import mask
from kong_secrets_backend.sources.paths import validate_secret_id
from kong_secrets_backend.transport.deadline import Deadline

if TYPE_CHECKING:
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.runtime import Runtime
    from kong_secrets_backend.sources import SecretRecord
    from kong_secrets_backend.tokens import Token

log = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL = 300.0  # when the IdP gives neither expires_in nor a JWT exp
MAX_FIELD_CHARS = 64 * 1024  # no kong_auth value (a PEM key included) is legitimately longer


def _rotated(old: KongConnection, new: KongConnection) -> bool:
    """Only the secret material (or the version) changed: same flow, endpoint, client, scope, audience...

    A rotation keeps serving the old token until it nears expiry; any other change takes effect at once.
    """
    a, b = old.credential, new.credential
    if type(a) is not type(b) or not is_dataclass(a) or old.header_name != new.header_name:
        return False
    public = [f.name for f in fields(a) if f.repr and f.name != "version"]
    return all(getattr(a, name) == getattr(b, name) for name in public)


def _credential_refused(exc: TokenEndpointError) -> bool:
    return exc.oauth_error in ("invalid_client", "unauthorized_client") or exc.status == 401


def check_field_sizes(block: dict[str, Any]) -> None:
    """Refuse megabyte values up front, by field name (they would end up in headers and request bodies)."""
    for name, value in block.items():
        if len(json.dumps(value)) > MAX_FIELD_CHARS:
            raise SecretFormatError(f"kong_auth.{name} is longer than {MAX_FIELD_CHARS} characters")


@dataclass
class KongConnection:
    """A Kong connection secret, parsed once and kept for credential_cache_ttl: its record, credential, flow.

    The JSON handed to Airflow is memoized per token, so a hot resolution is a cache lookup.
    """

    record: SecretRecord
    flow: TokenFlow
    header_name: str
    header_scheme: str = "Bearer"  # "" for key_auth: the header's value is the key itself
    allowed_dags: tuple[str, ...] | None = None
    credential: Any = field(default=None, repr=False)
    replaced: TokenFlow | None = field(default=None, repr=False)  # the credential version this one replaced
    _memo: tuple[str, dict[str, str], str] | None = field(default=None, repr=False)

    def conn_value(self, token: Token, conn_id: str, extra_headers: dict[str, str] | None = None) -> str:
        headers = extra_headers or {}  # correlation headers (trace_headers.py): memoized with the token
        memo = self._memo
        if memo is not None and memo[0] == token.value and memo[1] == headers:
            return memo[2]
        header_value = f"{self.header_scheme} {token.value}" if self.header_scheme else token.value
        value = kong_conn_value(
            self.record.data,
            header_name=self.header_name,
            header_value=header_value,
            conn_id=conn_id,
            extra_headers=headers,
        )
        self._memo = (token.value, headers, value)
        return value


class Resolver:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- connections ------------------------------------------------------------------------------

    def conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        validate_secret_id(conn_id, kind="conn_id")
        deadline = Deadline(self.runtime.config.deadline)
        key = ("connections", conn_id, team_name or "")
        entry = self._cached(key)
        if entry is None:
            try:
                loaded = self._load(conn_id, team_name, deadline)
            except SourceError as exc:
                loaded = self._last_read(key, conn_id, exc)
            if not isinstance(loaded, KongConnection):
                return loaded  # None, or a plain connection exactly as the official backend returns it
            entry = self._adopt(key, loaded)
        assert isinstance(entry, KongConnection)
        if entry.allowed_dags is not None:
            check_allowed(entry.allowed_dags, conn_id)
        entry, token = self._token(key, entry, conn_id, team_name, deadline)
        mask(token.value)
        observe.resolved(conn_id, entry.record.path, entry.record.version, entry.flow.name, entry.header_name, token)
        config = self.runtime.config
        headers = correlation_headers(traceparent=config.traceparent, task_headers=config.task_headers)
        return entry.conn_value(token, conn_id, headers)

    def _load(
        self, conn_id: str, team_name: str | None, deadline: Deadline, *, fresh: bool = False
    ) -> KongConnection | str | None:
        """Read and parse the connection; ``fresh`` also reads its shared credential again, bypassing the cache."""
        record = self.runtime.source.read("connections", conn_id, deadline, team_name)
        if record is None:
            return None
        if "kong_auth" not in record.data:  # plain connections are read every time, like the official backends
            return record.plain if record.plain is not None else plain_conn_value(record.data)
        return self._kong_connection(record, deadline, fresh=fresh)

    def _last_read(self, key: tuple[str, ...], conn_id: str, exc: SourceError) -> KongConnection:
        """The source is down: keep serving the Kong connection read last (its token may well be valid)."""
        last = self.runtime.previous.get(key)
        if last is None:
            raise exc
        log.warning(
            "kong-secrets-backend: %s; serving conn_id %s from the secret last read at %s",
            exc,
            conn_id,
            last.record.path,
        )
        return last

    def _adopt(self, key: tuple[str, ...], entry: KongConnection) -> KongConnection:
        """Cache a freshly read Kong connection; if its credential changed, remember the one it replaces."""
        rt = self.runtime
        old = rt.previous.get(key)
        if old is entry:  # re-adopting the last read secret (the source is down): keep it as it is
            self._store(key, entry)
            return entry
        if old is not None and old.flow.cache_key() != entry.flow.cache_key() and _rotated(old, entry):
            entry.replaced = old.flow
        rt.previous[key] = entry
        self._store(key, entry)
        return entry

    def _token(
        self, key: tuple[str, ...], entry: KongConnection, conn_id: str, team_name: str | None, deadline: Deadline
    ) -> tuple[KongConnection, Token]:
        """The token to send: the cached one, a new one, or after a rotation the old version's until it ages."""
        flow = entry.flow
        if getattr(flow, "static", False):  # key_auth: nothing to mint or cache
            return entry, flow.mint(deadline)
        broker, label = self.runtime.broker, f"conn_id {conn_id}"
        replaced = entry.replaced
        if replaced is not None:
            # A new credential version: the old version's token is served until it nears expiry, so a rotation
            # costs no mint and cannot fail while the IdP is still learning the new secret.
            held = broker.peek(replaced)
            if held is not None and broker.peek(flow) is None:
                return entry, held
        try:
            token = broker.token(flow, deadline, label=label, force=self._first_resolution_of_a_retry(flow))
        except TokenEndpointError as exc:
            if replaced is not None and (held := broker.peek(replaced, usable=True)) is not None:
                log.warning(
                    "kong-secrets-backend: the new credential version of conn_id %s was refused (%s); serving the "
                    "previous version's token, valid for %.0fs more",
                    conn_id,
                    exc,
                    held.remaining(),
                )
                return entry, held
            if not _credential_refused(exc):
                raise
            # The IdP refused the credential we hold: it may have been rotated under us. Read it again,
            # bypassing the cache, and retry once if it changed.
            reloaded = self._load(conn_id, team_name, deadline, fresh=True)
            if not isinstance(reloaded, KongConnection):
                raise
            if reloaded.flow.cache_key() != flow.cache_key():
                log.info(
                    "kong-secrets-backend: conn_id %s: the credential changed at the source; retrying once", conn_id
                )
                entry = self._adopt(key, reloaded)
                entry.replaced = None
                token = broker.token(entry.flow, deadline, label=label)
            else:
                # Unchanged: a rotation may have changed the IdP before it moved the source's current version
                # (AWS Secrets Manager: AWSPENDING is written and set at the IdP, then AWSCURRENT moves to it).
                try:
                    pending = self._pending(reloaded, deadline)
                except KongAuthError as unreadable:  # the refusal stays the error to report
                    log.warning(
                        "kong-secrets-backend: conn_id %s: cannot use the pending credential version (%s)",
                        conn_id,
                        unreadable,
                    )
                    pending = None
                if pending is None or pending.flow.cache_key() == flow.cache_key():
                    raise
                log.info(
                    "kong-secrets-backend: conn_id %s: the identity provider refused the current credential; "
                    "trying the pending version at %s once",
                    conn_id,
                    pending.record.path,
                )
                try:
                    token = broker.token(pending.flow, deadline, label=label)
                except TokenEndpointError as refused:
                    log.warning(
                        "kong-secrets-backend: conn_id %s: the pending credential version was refused too (%s)",
                        conn_id,
                        refused,
                    )
                    raise exc from None
                entry = self._adopt(key, pending)
        entry.replaced = None
        return entry, token

    def _pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
        """The connection with the source's pending credential version, or None: an optional source capability
        (``read_pending``: AWS Secrets Manager's AWSPENDING), of the connection secret or its shared credential."""
        read_pending = getattr(self.runtime.source, "read_pending", None)
        if read_pending is None:
            return None
        shared_path = load_kong_auth(current.record.data["kong_auth"]).get("credentials_path")
        if shared_path is None:
            record = read_pending("connections", current.record.path, deadline)
            if record is None or "kong_auth" not in record.data:
                return None
            return self._kong_connection(record, deadline)
        shared = read_pending("credentials", shared_path, deadline)
        if shared is None:
            return None
        return self._kong_connection(current.record, deadline, shared=self._shared_fields(shared))

    def _first_resolution_of_a_retry(self, flow: TokenFlow) -> bool:
        """True once per task try > 1 and credential: a retried task starts with a freshly minted token (the
        commonest reason for the retry is a 401 from a token that expired or was revoked)."""
        task = current_task()
        if task is None or not task.try_number or task.try_number <= 1:
            return False
        marker = (task.dag_id, task.task_id, task.run_id, task.map_index, task.try_number, flow.cache_key())
        with self.runtime.records_lock:
            if marker in self.runtime.forced:
                return False
            self.runtime.forced.add(marker)
        return True

    def _kong_connection(
        self, record: SecretRecord, deadline: Deadline, *, fresh: bool = False, shared: SecretRecord | None = None
    ) -> KongConnection:
        """Parse a Kong connection; its ``credentials_path`` is read (through the cache unless ``fresh``) unless
        ``shared`` gives that credential already."""
        check_kong_connection_fields(record.data)
        block = load_kong_auth(record.data["kong_auth"])
        check_field_sizes(block)
        allowed_dags = parse_allowed_dags(block.pop("allowed_dags", None))
        version = record.version
        shared_path = block.get("credentials_path")
        if shared_path is not None:
            shared = shared or self._shared_credential(shared_path, deadline, fresh=fresh)
            block = {**{k: v for k, v in block.items() if k != "credentials_path"}, **shared.data}
            # connections sharing one credential share its tokens: the key follows the credential's version
            version = f"{shared.path}@{shared.version}"
        config = self.runtime.config
        credential = parse_credential(block, settings=config, version=version)
        mask(*credential.secret_values())
        flow = build_flow(credential, http=self.runtime.http, settings=config, source=self.runtime.source)
        return KongConnection(
            record=record,
            flow=flow,
            header_name=credential.header_name,
            header_scheme=credential.header_scheme,
            allowed_dags=allowed_dags,
            credential=credential,
        )

    def _shared_credential(self, path: Any, deadline: Deadline, *, fresh: bool = False) -> SecretRecord:
        if not isinstance(path, str) or not path.strip("/"):
            raise SecretFormatError("kong_auth.credentials_path must be a non-empty string")
        validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
        cached = None if fresh else self._cached(("credentials", path))
        if cached is not None:
            return cached  # type: ignore[return-value]
        record = self.runtime.source.read_path(path, deadline)
        if record is None:
            raise SourceError(f"kong_auth.credentials_path {path} holds no secret", reason="credentials_missing")
        record = self._shared_fields(record)
        self._store(("credentials", path), record)
        return record

    @staticmethod
    def _shared_fields(record: SecretRecord) -> SecretRecord:
        """A shared credential's fields (the secret may itself be a kong_auth block), masked."""
        if "kong_auth" in record.data:
            record = type(record)(
                data=load_kong_auth(record.data["kong_auth"]), path=record.path, version=record.version
            )
        mask(*(v for v in record.data.values() if isinstance(v, str)))
        return record

    def _cached(self, key: tuple[str, ...]) -> KongConnection | SecretRecord | None:
        return self.runtime.records.get(key)  # lock-free read (hot path)

    def _store(self, key: tuple[str, ...], value: KongConnection | SecretRecord) -> None:
        rt = self.runtime
        with rt.records_lock:
            rt.records[key] = value

    # -- variables and config: exactly VaultBackend's reading ------------------------------------

    def variable(self, key: str, team_name: str | None = None) -> str | None:
        validate_secret_id(key, kind="variable key")
        record = self.runtime.source.read("variables", key, Deadline(self.runtime.config.deadline), team_name)
        return _value_field(record)

    def config(self, key: str) -> str | None:
        validate_secret_id(key, kind="config key")
        record = self.runtime.source.read("config", key, Deadline(self.runtime.config.deadline))
        return _value_field(record)


def _value_field(record: SecretRecord | None) -> str | None:
    if record is None or not record.data:
        return None
    return record.data.get("value")
