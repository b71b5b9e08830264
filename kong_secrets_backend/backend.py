"""``KongSecretsBackend``: the class Airflow loads from ``[secrets] backend``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.secrets import BaseSecretsBackend

from kong_secrets_backend.airflow_bridge import masking, metrics
from kong_secrets_backend.airflow_bridge.compat import connection_class
from kong_secrets_backend.airflow_bridge.connections import ConnectionMemo
from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import AccessDenied, ConfigError, ErrorCategory, KongAuthError, airflow_access_denied
from kong_secrets_backend.resolver import Resolution, Resolver
from kong_secrets_backend.settings import Settings, parse_backend_kwargs
from kong_secrets_backend.sources.vault_settings import warn_if_plaintext
from kong_secrets_backend.state import runtime_for

log = logging.getLogger("kong_secrets_backend")

T = TypeVar("T")


class KongSecretsBackend(BaseSecretsBackend):
    """Reads connections from Vault like Airflow's VaultBackend; a ``kong_auth`` block adds a fresh token.

    The constructor only parses its kwargs (no network I/O: Airflow builds a backend in every process
    at import time). A configuration mistake is logged at ERROR once here and again on each lookup,
    which then returns nothing, rather than breaking every Airflow command.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._connections = ConnectionMemo()
        self._config: Settings | None = None
        self._config_error: ConfigError | None = None
        self._resolver: Resolver | None = None
        try:
            self._config = parse_backend_kwargs(kwargs)
        except ConfigError as exc:
            self._config_error = exc
            log.error("kong-secrets-backend: invalid backend_kwargs: %s", exc)
        if self._config is not None:
            masking.configure(fast_masking=self._config.fast_masking)
        if self._config is not None and self._config.vault is not None:
            mask(*self._config.vault.auth.secret_values())
            warn_if_plaintext(self._config.vault)

    def __repr__(self) -> str:
        source = self._config.source if self._config else "misconfigured"
        return f"KongSecretsBackend(source={source!r})"

    @property
    def resolver(self) -> Resolver:
        if self._config is None:
            raise self._config_error or ConfigError("backend is not configured")
        runtime = runtime_for(self._config)
        resolver = self._resolver
        if resolver is None or resolver.runtime is not runtime:
            resolver = self._resolver = Resolver(runtime)
        return resolver

    # -- Airflow's interface ----------------------------------------------------------------------

    def get_connection(self, conn_id: str, team_name: str | None = None) -> Any:
        """Airflow's own ``get_connection``, minus its per-call signature inspection (hot path); a Kong
        connection unchanged since the last call is copied rather than parsed again (airflow_bridge/connections.py)."""
        value = self.get_conn_value(conn_id, team_name)
        if not value:
            return None
        return self._connections.connection(
            conn_id,
            team_name,
            value,
            connection_class(self),
            lambda: self.deserialize_connection(conn_id=conn_id, value=value),
        )

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        return self._logged("connections", conn_id, team_name, lambda r: r.conn_value(conn_id, team_name))

    def resolve(self, conn_id: str, team_name: str | None = None) -> Resolution | str | None:
        """What ``get_conn_value`` does, with its findings: a :class:`Resolution` for a Kong connection (the
        ``check`` command reads it), a plain connection's value, or None. Errors are logged the same way."""
        return self._logged("connections", conn_id, team_name, lambda r: r.connection(conn_id, team_name))

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return self._logged("variables", key, team_name, lambda r: r.variable(key, team_name))

    def get_config(self, key: str) -> str | None:
        return self._logged("config", key, None, lambda r: r.config(key))

    def _logged(self, kind: str, key: str, team_name: str | None, lookup: Callable[[Resolver], T]) -> T:
        """Run a lookup; on failure log one ERROR naming the key, the path and the reason, count the error
        under its category (metrics.py), then re-raise.

        Airflow swallows a backend's exceptions at DEBUG and reports only "isn't defined", so this record
        is the user's clue. It never holds a secret value: error messages name fields, not values.
        """
        try:
            return lookup(self.resolver)
        except KongAuthError as exc:
            metrics.error(exc.category, exc.reason)
            log.error(
                "kong-secrets-backend: cannot resolve %s %r (path %s): %s [%s]",
                _KIND_LABEL[kind],
                key,
                self._describe(kind, key, team_name),
                exc,
                exc.reason,
            )
            if isinstance(exc, AccessDenied):
                raise airflow_access_denied(str(exc)) from None
            raise
        except Exception as exc:
            # Not one of ours: its text may quote a secret (a codec error shows the string it choked on),
            # so only its type is reported, and it is replaced rather than chained.
            metrics.error(ErrorCategory.INTERNAL, "internal")
            log.error(
                "kong-secrets-backend: cannot resolve %s %r (path %s): unexpected %s [internal]",
                _KIND_LABEL[kind],
                key,
                self._describe(kind, key, team_name),
                type(exc).__name__,
            )
            raise KongAuthError(f"unexpected {type(exc).__name__} while resolving", reason="internal") from None

    def _describe(self, kind: str, key: str, team_name: str | None) -> str:
        if self._config is None:
            return "?"
        try:
            return runtime_for(self._config).source.describe(kind, key, team_name)  # type: ignore[arg-type]
        except Exception:
            return "?"


_KIND_LABEL = {"connections": "conn_id", "variables": "variable", "config": "config key"}
