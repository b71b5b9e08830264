"""One resolution, in the order the design reads: secret source -> credential -> token -> connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.connection import kong_conn_value, plain_conn_value
from kong_secrets_backend.credentials import load_kong_auth, parse_credential
from kong_secrets_backend.deadline import Deadline
from kong_secrets_backend.errors import SecretFormatError, SourceError
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.masking import mask
from kong_secrets_backend.secret_ids import validate_secret_id

if TYPE_CHECKING:
    from kong_secrets_backend.flows import TokenFlow
    from kong_secrets_backend.runtime import Runtime
    from kong_secrets_backend.sources import SecretRecord
    from kong_secrets_backend.tokens import Token

DEFAULT_TOKEN_TTL = 300.0  # when the IdP gives neither expires_in nor a JWT exp


@dataclass
class KongConnection:
    """A Kong connection secret, parsed once and kept for credential_cache_ttl: its record, credential, flow.

    The JSON handed to Airflow is memoized per token, so a hot resolution is a cache lookup.
    """

    record: SecretRecord
    flow: TokenFlow
    header_name: str
    _memo: tuple[str, str] | None = field(default=None, repr=False)

    def conn_value(self, token: Token, conn_id: str) -> str:
        memo = self._memo
        if memo is not None and memo[0] == token.value:
            return memo[1]
        value = kong_conn_value(
            self.record.data, header_name=self.header_name, header_value=f"Bearer {token.value}", conn_id=conn_id
        )
        self._memo = (token.value, value)
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
                return plain_conn_value(record.data)  # plain connections are read every time, like VaultBackend
            entry = self._kong_connection(record, deadline)
            self._store(("connections", conn_id, team_name or ""), entry)
        assert isinstance(entry, KongConnection)
        token = self.runtime.broker.token(entry.flow, deadline, label=f"conn_id {conn_id}")
        mask(token.value)
        return entry.conn_value(token, conn_id)

    def _kong_connection(self, record: SecretRecord, deadline: Deadline) -> KongConnection:
        block = load_kong_auth(record.data["kong_auth"])
        version = record.version
        shared_path = block.get("credentials_path")
        if shared_path is not None:
            shared = self._shared_credential(shared_path, deadline)
            block = {**{k: v for k, v in block.items() if k != "credentials_path"}, **shared.data}
            version = f"{version}+{shared.path}@{shared.version}"
        credential = parse_credential(
            block, allow_insecure_http=self.runtime.config.allow_insecure_http, version=version
        )
        mask(*credential.secret_values())
        flow = build_flow(credential, self.runtime.http, default_ttl=DEFAULT_TOKEN_TTL)
        return KongConnection(record=record, flow=flow, header_name=credential.header_name)

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
        rt = self.runtime
        with rt.records_lock:
            return rt.records.get(key)

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
