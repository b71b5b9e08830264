"""HashiCorp Vault (or OpenBao) KV v1/v2 as a secret source, with the path semantics of Airflow's VaultBackend.

One authenticated hvac client per process and settings: logged in on first use, reused after, and
logged in again once when Vault answers 403.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.airflow_compat import multi_team_enabled
from kong_secrets_backend.errors import SourceError
from kong_secrets_backend.masking import mask
from kong_secrets_backend.sources import SecretKind, SecretRecord

if TYPE_CHECKING:
    import hvac

    from kong_secrets_backend.deadline import Deadline
    from kong_secrets_backend.sources.vault_settings import VaultSettings

log = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = 5.0  # seconds per Vault request, always further bounded by the resolution deadline


class VaultSource:
    """Reads secrets from Vault KV the way ``airflow.providers.hashicorp.secrets.vault.VaultBackend`` does."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._client: hvac.Client | None = None
        self._lock = threading.Lock()
        self.logins = 0  # how many times this process logged in (observability and tests)
        mask(*settings.auth.secret_values())

    def __repr__(self) -> str:
        return f"VaultSource(url={self.settings.url!r}, auth_type={self.settings.auth.type!r})"

    # -- paths, as VaultBackend builds them -------------------------------------------------------

    def _base_paths(self, kind: SecretKind) -> tuple[str, ...] | None:
        return {
            "connections": self.settings.connections_path,
            "variables": self.settings.variables_path,
            "config": self.settings.config_path,
        }[kind]

    def _split_mount(self, key: str) -> tuple[str | None, str | None]:
        """(mount, key) where the mount comes from the key itself when ``mount_point`` is None."""
        if self.settings.mount_point:
            return self.settings.mount_point, key
        head, sep, rest = key.partition("/")
        return (head, rest) if sep else (None, None)

    def _candidates(self, kind: SecretKind, key: str, team_name: str | None) -> list[tuple[str, str]]:
        """(mount, path) pairs to try in order, or [] when this kind is disabled or the key is refused."""
        base_paths = self._base_paths(kind)
        mount, key_part = self._split_mount(key)
        if not base_paths or mount is None or key_part is None:
            return []
        team_scoped = kind != "config" and self.settings.use_team_secrets_path and multi_team_enabled()
        if team_scoped and team_name is None and "/" in key_part:
            log.warning(
                "Secret id %r contains '/' and is looked up with no team. In multi-team mode it can resolve "
                "a team's secret under the base path, so it is not looked up.",
                key,
            )
            return []
        out = []
        for base in base_paths:
            if team_scoped and team_name is not None:
                base = f"{base}/{team_name}"
            out.append((mount, key_part if base == "" else f"{base}/{key_part}"))
        return out

    def describe(self, kind: SecretKind, key: str, team_name: str | None = None) -> str:
        paths = [f"{m}/{p}" for m, p in self._candidates(kind, key, team_name)]
        return ", ".join(paths) if paths else f"(no {kind} path configured)"

    # -- reading ----------------------------------------------------------------------------------

    def read(self, kind: SecretKind, key: str, deadline: Deadline, team_name: str | None = None) -> SecretRecord | None:
        candidates = self._candidates(kind, key, team_name)
        for mount, path in candidates:
            record = self._read(mount, path, deadline)
            if record is not None:
                return record
        log.debug("%s %r not found in Vault at %s", kind, key, ", ".join(f"{m}/{p}" for m, p in candidates) or "-")
        return None

    def read_path(self, path: str, deadline: Deadline) -> SecretRecord | None:
        mount, key_part = self._split_mount(path.lstrip("/"))
        if mount is None or key_part is None:
            raise SourceError(f"path {path!r} names no KV mount (mount_point is None)", reason="bad_path")
        return self._read(mount, key_part, deadline)

    def _read(self, mount: str, path: str, deadline: Deadline) -> SecretRecord | None:
        import hvac.exceptions

        full = f"{mount}/{path}"
        try:
            response = self._with_reauth(lambda client: self._kv_read(client, mount, path), deadline)
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.Forbidden as exc:
            raise SourceError(
                f"Vault denied reading {full} (403 after logging in again)", reason="vault_forbidden"
            ) from exc
        except hvac.exceptions.VaultDown as exc:
            raise SourceError(f"Vault is sealed or down while reading {full}", reason="vault_down") from exc
        except hvac.exceptions.VaultError as exc:
            raise SourceError(f"Vault error reading {full}: {type(exc).__name__}", reason="vault_error") from exc
        except OSError as exc:  # requests' ConnectionError/Timeout derive from OSError
            raise SourceError(
                f"Vault at {self.settings.url} unreachable reading {full}: {type(exc).__name__}",
                reason="vault_unreachable",
            ) from exc
        if response is None:
            return None
        if self.settings.kv_engine_version == 1:
            data, version = response.get("data"), None
        else:
            body = response.get("data") or {}
            data = body.get("data")
            meta = body.get("metadata") or {}
            version = str(meta["version"]) if meta.get("version") is not None else None
        if not isinstance(data, dict):
            return None
        return SecretRecord(data=data, path=full, version=version)

    def _kv_read(self, client: hvac.Client, mount: str, path: str) -> dict[str, Any] | None:
        if self.settings.kv_engine_version == 1:
            return client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
        return client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)

    # -- the client and its login -----------------------------------------------------------------

    def _with_reauth(self, operation: Any, deadline: Deadline) -> Any:
        import hvac.exceptions

        client = self._authenticated_client(deadline)
        try:
            return operation(self._bounded(client, deadline))
        except hvac.exceptions.Forbidden:
            log.info("Vault answered 403; logging in again once")
            client = self._authenticated_client(deadline, stale=client)
            return operation(self._bounded(client, deadline))

    def _bounded(self, client: hvac.Client, deadline: Deadline) -> hvac.Client:
        cap = float(self.settings.client_kwargs.get("timeout", _DEFAULT_TIMEOUT))
        # hvac keeps per-request options in the adapter; bound this request by what is left of the deadline.
        client.adapter._kwargs["timeout"] = deadline.timeout(cap, what="a Vault request")
        return client

    def _authenticated_client(self, deadline: Deadline, stale: hvac.Client | None = None) -> hvac.Client:
        client = self._client
        if client is not None and client is not stale:
            return client
        with self._lock:
            if self._client is not None and self._client is not stale:
                return self._client
            self._client = self._login(deadline)
            return self._client

    def _login(self, deadline: Deadline) -> hvac.Client:
        import hvac

        settings = self.settings
        kwargs = {k: v for k, v in settings.client_kwargs.items() if k != "timeout"}
        kwargs["timeout"] = deadline.timeout(
            float(settings.client_kwargs.get("timeout", _DEFAULT_TIMEOUT)), what="Vault login"
        )
        client = hvac.Client(url=settings.url, **kwargs)
        auth, params = settings.auth, settings.auth.params
        mount = {"mount_point": auth.mount_point} if auth.mount_point else {}
        try:
            if auth.type == "token":
                client.token = _read_file(params["token_path"]) if params.get("token_path") else params["token"]
            elif auth.type == "approle":
                client.auth.approle.login(role_id=params["role_id"], secret_id=params.get("secret_id"), **mount)
            elif auth.type == "userpass":
                client.auth.userpass.login(username=params["username"], password=params.get("password"), **mount)
            else:  # parse_backend_kwargs refuses these first
                raise SourceError(f"auth_type {auth.type!r} is not supported", reason="bad_config")
        except hvac.exceptions.VaultError as exc:
            raise SourceError(
                f"Vault login with auth_type {auth.type!r} failed: {type(exc).__name__}", reason="vault_login"
            ) from exc
        except OSError as exc:
            raise SourceError(
                f"Vault at {self.settings.url} unreachable during login: {type(exc).__name__}",
                reason="vault_unreachable",
            ) from exc
        if not client.token:
            raise SourceError(f"Vault login with auth_type {auth.type!r} produced no token", reason="vault_login")
        mask(client.token)
        self.logins += 1
        return client


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise SourceError(f"cannot read token_path {path}: {exc.strerror}", reason="bad_config") from exc
