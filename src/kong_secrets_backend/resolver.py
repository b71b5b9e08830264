"""One resolution, in the order the design reads: secret source -> credential -> token -> connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kong_secrets_backend.connection import kong_conn_value, plain_conn_value
from kong_secrets_backend.credentials import load_kong_auth, parse_credential
from kong_secrets_backend.deadline import Deadline
from kong_secrets_backend.errors import SecretFormatError, SourceError
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.masking import mask
from kong_secrets_backend.secret_ids import validate_secret_id

if TYPE_CHECKING:
    from kong_secrets_backend.credentials import Credential
    from kong_secrets_backend.runtime import Runtime
    from kong_secrets_backend.sources import SecretRecord

DEFAULT_TOKEN_TTL = 300.0  # when the IdP gives neither expires_in nor a JWT exp


class Resolver:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- connections ------------------------------------------------------------------------------

    def conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        validate_secret_id(conn_id, kind="conn_id")
        deadline = Deadline(self.runtime.config.deadline)
        record = self._connection_record(conn_id, team_name, deadline)
        if record is None:
            return None
        if "kong_auth" not in record.data:
            return plain_conn_value(record.data)
        credential = self._credential(record, deadline)
        flow = build_flow(credential, self.runtime.http, default_ttl=DEFAULT_TOKEN_TTL)
        token = self.runtime.broker.token(flow, deadline, label=f"conn_id {conn_id}")
        mask(token.value)
        return kong_conn_value(
            record.data, header_name=credential.header_name, header_value=f"Bearer {token.value}", conn_id=conn_id
        )

    def _connection_record(self, conn_id: str, team_name: str | None, deadline: Deadline) -> SecretRecord | None:
        """Kong connections are kept for credential_cache_ttl; plain ones are read every time, like VaultBackend."""
        rt = self.runtime
        cache_key = ("connections", conn_id, team_name or "")
        with rt.records_lock:
            cached = rt.records.get(cache_key)
        if cached is not None:
            return cached
        record = rt.source.read("connections", conn_id, deadline, team_name)
        if record is not None and "kong_auth" in record.data:
            with rt.records_lock:
                rt.records[cache_key] = record
        return record

    def _credential(self, record: SecretRecord, deadline: Deadline) -> Credential:
        block = load_kong_auth(record.data["kong_auth"])
        version = record.version
        shared_path = block.get("credentials_path")
        if shared_path is not None:
            shared = self._shared_credential(shared_path, deadline)
            block = {**{k: v for k, v in block.items() if k != "credentials_path"}, **shared.data}
            version = f"{version}+{shared.path}@{shared.version}"
        return parse_credential(block, allow_insecure_http=self.runtime.config.allow_insecure_http, version=version)

    def _shared_credential(self, path: Any, deadline: Deadline) -> SecretRecord:
        if not isinstance(path, str) or not path.strip("/"):
            raise SecretFormatError("kong_auth.credentials_path must be a non-empty string")
        validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
        rt = self.runtime
        cache_key = ("credentials", path)
        with rt.records_lock:
            cached = rt.records.get(cache_key)
        if cached is not None:
            return cached
        record = rt.source.read_path(path, deadline)
        if record is None:
            raise SourceError(f"kong_auth.credentials_path {path} holds no secret", reason="credentials_missing")
        if "kong_auth" in record.data:  # allow the shared secret to be a kong_auth block itself
            record = type(record)(
                data=load_kong_auth(record.data["kong_auth"]), path=record.path, version=record.version
            )
        for value in record.data.values():
            if isinstance(value, str):
                mask(value)
        with rt.records_lock:
            rt.records[cache_key] = record
        return record

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
