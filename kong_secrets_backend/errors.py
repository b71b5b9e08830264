"""The errors the backend raises. Messages name fields and reasons, never a secret value."""

from __future__ import annotations


class KongAuthError(Exception):
    """Base class: something stopped a connection from being resolved.

    ``reason`` is a short machine-friendly tag (used in logs and, later, metrics).
    """

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(KongAuthError):
    """The backend kwargs are invalid."""

    reason = "bad_config"


class SecretFormatError(KongAuthError):
    """A secret read from the source is malformed (wrong JSON, bad or missing field)."""

    reason = "bad_secret"


class SecretIdError(KongAuthError):
    """A conn_id / key that would leave the configured path; refused before any request."""

    reason = "bad_secret_id"


class SourceError(KongAuthError):
    """The secret source (Vault, AWS) could not be reached, refused us, or answered nonsense."""

    reason = "source_unavailable"


class TokenEndpointError(KongAuthError):
    """The identity provider refused or failed to issue a token.

    ``oauth_error`` / ``oauth_error_description`` carry the IdP's RFC 6749 error, when it sent one.
    """

    reason = "token_endpoint"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        oauth_error: str | None = None,
        oauth_error_description: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.oauth_error = oauth_error
        self.oauth_error_description = oauth_error_description


class DeadlineExceeded(KongAuthError):
    """The resolution ran past its deadline."""

    reason = "deadline"


class AccessDenied(KongAuthError):
    """``allowed_dags`` refuses this resolution; raised to Airflow as AirflowSecretsBackendAccessDenied."""

    reason = "access_denied"


def airflow_access_denied(message: str) -> Exception:
    """Airflow's AirflowSecretsBackendAccessDenied (task SDK >= 1.2.2), else a PermissionError."""
    try:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        return AirflowSecretsBackendAccessDenied(message)
    except ImportError:  # pragma: no cover - older task SDKs do not have it
        return PermissionError(message)
