"""HashiCorp Vault (or OpenBao) KV v1/v2 as a secret source, with the path semantics of Airflow's VaultBackend.

Paths: ``<mount>/<base path>[/<team>]/<key>`` for each base path in order (a list of paths is tried in
order; ``mount_point`` None takes the mount from the key's first segment), exactly as VaultBackend builds
them, including its multi-team rules. The login and the token's life are in ``vault_session.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.airflow_bridge.compat import multi_team_enabled
from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import SourceError
from kong_secrets_backend.sources import SecretKind, SecretRecord
from kong_secrets_backend.sources.vault_session import VaultSession, unreachable_error

if TYPE_CHECKING:
    import hvac

    from kong_secrets_backend.sources.vault_settings import VaultSettings
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)


class VaultSource:
    """Reads secrets from Vault KV the way ``airflow.providers.hashicorp.secrets.vault.VaultBackend`` does."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.session = VaultSession(settings)
        mask(*settings.auth.secret_values())

    def __repr__(self) -> str:
        return f"VaultSource(url={self.settings.url!r}, auth_type={self.settings.auth.type!r})"

    def after_fork(self) -> None:
        """In a forked child (runtime.py's at-fork hook)."""
        self.session.after_fork()

    @property
    def logins(self) -> int:
        """How many times this process logged in to Vault with these settings."""
        return self.session.logins

    @property
    def _client(self) -> hvac.Client | None:
        return self.session.client

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
        if kind != "config" and self.settings.use_team_secrets_path and multi_team_enabled():
            if team_name is None and "/" in key_part:
                log.warning(
                    "Secret id %r contains '/' and is looked up with no team. In multi-team mode it can resolve "
                    "a team's secret under the base path, so it is not looked up.",
                    key,
                )
                return []
            team = team_name
        else:
            team = None
        out = []
        for base in base_paths:
            if team is not None:
                base = f"{base}/{team}"
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

    # -- identity tokens (kong_auth flow vault_identity) -------------------------------------------

    def sign_identity_token(self, role: str, deadline: Deadline) -> str:
        """An identity token signed by Vault for this backend's own Vault identity (``identity/oidc/token/<role>``)."""
        where = f"identity/oidc/token/{role}"
        response = self._identity_call(
            where, lambda client: client.secrets.identity.generate_signed_id_token(role), deadline
        )
        token = ((response or {}).get("data") or {}).get("token") if isinstance(response, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(f"Vault answered {where} without a token", reason="vault_identity_token")
        mask(token)
        return token

    def identity_jwks(self, deadline: Deadline) -> dict[str, Any]:
        """Vault's identity token verification keys (``identity/oidc/.well-known/keys``, a JWKS)."""
        where = "identity/oidc/.well-known/keys"
        response = self._identity_call(
            where, lambda client: client.secrets.identity.read_active_public_keys(), deadline
        )
        if not isinstance(response, dict) or not isinstance(response.get("keys"), list):
            raise SourceError(f"Vault answered {where} without a JWKS", reason="vault_identity_token")
        return response

    def _identity_call(self, where: str, operation: Any, deadline: Deadline) -> Any:
        """Run an identity request; Vault's refusals and failures become SourceErrors naming ``where``."""
        import hvac.exceptions

        try:
            return self._with_reauth(operation, deadline)
        except hvac.exceptions.Forbidden as exc:
            raise SourceError(
                f"Vault denied {where}: the policy of the backend's Vault login must allow read on it",
                reason="vault_forbidden",
            ) from exc
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as exc:
            raise SourceError(
                f"Vault refused {where}: no such identity OIDC role, or the login has no identity entity "
                f"({type(exc).__name__})",
                reason="vault_identity_role",
            ) from exc
        except hvac.exceptions.VaultError as exc:
            raise SourceError(f"Vault error on {where}: {type(exc).__name__}", reason="vault_error") from exc
        except OSError as exc:
            raise SourceError(
                f"Vault at {self.settings.url} unreachable on {where}: {type(exc).__name__}", reason="vault_unreachable"
            ) from exc

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
            raise unreachable_error(self.settings.url, f"reading {full}", exc) from exc
        if not isinstance(response, dict):
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

    def _kv_read(self, client: hvac.Client, mount: str, path: str) -> Any:
        if self.settings.kv_engine_version == 1:
            return client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
        return client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)

    def _with_reauth(self, operation: Any, deadline: Deadline) -> Any:
        """One Vault request through the process's session (login, renewal, one re-login on 403)."""
        return self.session.call(operation, deadline)
