"""One resolution, in the order the design reads: secret source -> credential -> token -> connection."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend import observe
from kong_secrets_backend.access import check_allowed, parse_allowed_dags
from kong_secrets_backend.connection import check_kong_connection_fields, kong_conn_value, plain_conn_value
from kong_secrets_backend.credentials import load_kong_auth, parse_credential
from kong_secrets_backend.deadline import Deadline
from kong_secrets_backend.errors import SecretFormatError, SourceError
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.masking import mask
from kong_secrets_backend.secret_ids import validate_secret_id
from kong_secrets_backend.trace_headers import correlation_headers

if TYPE_CHECKING:
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.runtime import Runtime
    from kong_secrets_backend.sources import SecretRecord
    from kong_secrets_backend.tokens import Token

DEFAULT_TOKEN_TTL = 300.0  # when the IdP gives neither expires_in nor a JWT exp
MAX_FIELD_CHARS = 64 * 1024  # no kong_auth value (a PEM key included) is legitimately longer


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
        entry = self._cached(("connections", conn_id, team_name or ""))
        if entry is None:
            record = self.runtime.source.read("connections", conn_id, deadline, team_name)
            if record is None:
                return None
            if "kong_auth" not in record.data:
                # plain connections are read every time and returned as the official backend returns them
                return record.plain if record.plain is not None else plain_conn_value(record.data)
            entry = self._kong_connection(record, deadline)
            self._store(("connections", conn_id, team_name or ""), entry)
        assert isinstance(entry, KongConnection)
        if entry.allowed_dags is not None:
            check_allowed(entry.allowed_dags, conn_id)
        if getattr(entry.flow, "static", False):  # key_auth: nothing to mint or cache
            token = entry.flow.mint(deadline)
        else:
            token = self.runtime.broker.token(entry.flow, deadline, label=f"conn_id {conn_id}")
        mask(token.value)
        observe.resolved(conn_id, entry.record.path, entry.record.version, entry.flow.name, entry.header_name, token)
        config = self.runtime.config
        headers = correlation_headers(traceparent=config.traceparent, task_headers=config.task_headers)
        return entry.conn_value(token, conn_id, headers)

    def _kong_connection(self, record: SecretRecord, deadline: Deadline) -> KongConnection:
        check_kong_connection_fields(record.data)
        block = load_kong_auth(record.data["kong_auth"])
        check_field_sizes(block)
        allowed_dags = parse_allowed_dags(block.pop("allowed_dags", None))
        version = record.version
        shared_path = block.get("credentials_path")
        if shared_path is not None:
            shared = self._shared_credential(shared_path, deadline)
            block = {**{k: v for k, v in block.items() if k != "credentials_path"}, **shared.data}
            version = f"{version}+{shared.path}@{shared.version}"
        config = self.runtime.config
        credential = parse_credential(
            block, allow_insecure_http=config.allow_insecure_http, version=version, source=config.source
        )
        mask(*credential.secret_values())
        flow = build_flow(
            credential,
            self.runtime.http,
            default_ttl=config.default_token_ttl,
            source=self.runtime.source,
            identity=config.fingerprint,
            allow_insecure_http=config.allow_insecure_http,
        )
        return KongConnection(
            record=record,
            flow=flow,
            header_name=credential.header_name,
            header_scheme=credential.header_scheme,
            allowed_dags=allowed_dags,
        )

    def _shared_credential(self, path: Any, deadline: Deadline) -> SecretRecord:
        if not isinstance(path, str) or not path.strip("/"):
            raise SecretFormatError("kong_auth.credentials_path must be a non-empty string")
        validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
        cached = self._cached(("credentials", path))
        if cached is not None:
            return cached  # type: ignore[return-value]
        record = self.runtime.source.read_path(path, deadline)
        if record is None:
            raise SourceError(f"kong_auth.credentials_path {path} holds no secret", reason="credentials_missing")
        if "kong_auth" in record.data:  # the shared secret may itself be a kong_auth block
            record = type(record)(
                data=load_kong_auth(record.data["kong_auth"]), path=record.path, version=record.version
            )
        mask(*(v for v in record.data.values() if isinstance(v, str)))
        self._store(("credentials", path), record)
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
