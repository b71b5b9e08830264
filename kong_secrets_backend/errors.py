"""The errors the backend raises. Messages name fields and reasons, never a secret value.

Every error carries three things, decided here and nowhere else:

- ``reason``: a short tag for logs and the ``check`` report (``vault_down``, ``idp_invalid_client``, ...);
- ``category``: one of the few :class:`ErrorCategory` values; ``check``'s exit code and the metric names
  come from it (never from free text such as an identity provider's error code);
- ``transient``: whether another attempt may succeed (a 5xx, a 429, a dropped connection, a source that is
  down); the only thing retries look at.

A ``TokenEndpointError`` with an HTTP status derives both from the status (a 4xx is a refusal, a 5xx or a
429 is transient), whatever error code the identity provider sent. Any other error looks its reason up in
:data:`REASONS`, the closed vocabulary of the package's own reasons; an unknown reason takes its class's
defaults. A raise site may also pass ``category`` / ``transient`` explicitly.
"""

from __future__ import annotations

from enum import Enum


class ErrorCategory(str, Enum):
    """What kind of failure stopped a resolution (a closed set: metric names and exit codes come from it)."""

    CONFIG = "config"  # the backend kwargs (or the environment they rely on) are wrong
    SECRET = "secret"  # a secret read from the source is malformed or names something that is not there
    SECRET_ID = "secret_id"  # a conn_id / key that would leave the configured path; refused before any request
    SOURCE = "source"  # Vault / AWS unreachable, down, failing or answering nonsense
    SOURCE_REFUSED = "source_refused"  # Vault / AWS refused our credentials (login failed, 403)
    IDENTITY_PROVIDER = "identity_provider"  # the IdP unreachable, failing (5xx) or answering nonsense
    IDENTITY_PROVIDER_REFUSED = "identity_provider_refused"  # the IdP refused the request (a 4xx)
    DEADLINE = "deadline"  # the resolution ran out of time
    ACCESS_DENIED = "access_denied"  # allowed_dags refuses this DAG
    INTERNAL = "internal"  # anything else: a bug, or an error that is not ours


_C = ErrorCategory

# The package's own reasons: (category, transient). A test keeps every reason raised in the package in here.
REASONS: dict[str, tuple[ErrorCategory, bool]] = {
    "bad_config": (_C.CONFIG, False),
    "bad_secret": (_C.SECRET, False),
    "bad_path": (_C.SECRET, False),  # a path given in a secret names no KV mount
    "credentials_missing": (_C.SECRET, False),  # kong_auth.credentials_path holds no secret
    "bad_secret_id": (_C.SECRET_ID, False),
    "source_unavailable": (_C.SOURCE, False),
    "vault_down": (_C.SOURCE, True),  # sealed or in standby
    "vault_unreachable": (_C.SOURCE, True),
    "vault_error": (_C.SOURCE, True),  # any other Vault error answer
    "vault_tls": (_C.SOURCE, False),
    "vault_identity_token": (_C.SOURCE, False),  # Vault answered an identity request without a token / JWKS
    "vault_identity_role": (_C.SOURCE, False),  # no such identity OIDC role, or no identity entity
    "vault_login": (_C.SOURCE_REFUSED, False),
    "vault_forbidden": (_C.SOURCE_REFUSED, False),
    "aws_unavailable": (_C.SOURCE, True),  # throttled, or a 5xx
    "aws_unreachable": (_C.SOURCE, True),
    "aws_error": (_C.SOURCE, False),
    "aws_credentials": (_C.SOURCE, False),  # no credentials in the boto3 chain, or no session
    "aws_tls": (_C.SOURCE, False),
    "aws_forbidden": (_C.SOURCE_REFUSED, False),
    "token_endpoint": (_C.IDENTITY_PROVIDER, False),
    "idp_unreachable": (_C.IDENTITY_PROVIDER, True),  # connection refused or dropped
    "idp_http_error": (_C.IDENTITY_PROVIDER, False),  # an error answer without an OAuth error code
    "idp_redirect": (_C.IDENTITY_PROVIDER, False),
    "idp_garbage": (_C.IDENTITY_PROVIDER, False),
    "idp_token_type": (_C.IDENTITY_PROVIDER, False),
    "idp_oversized": (_C.IDENTITY_PROVIDER, False),
    "idp_discovery": (_C.IDENTITY_PROVIDER, False),
    "deadline": (_C.DEADLINE, False),
    "access_denied": (_C.ACCESS_DENIED, False),
    "internal": (_C.INTERNAL, False),
    "error": (_C.INTERNAL, False),
}

# Registered OAuth 2.0 error codes a token endpoint may answer (RFC 6749 sections 4.1.2.1 and 5.2, RFC 8707):
# ``idp_<code>`` reasons with one of these are part of the bounded vocabulary that ``reason_tag`` keeps.
OAUTH_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)
OTHER_REASON = "other"


def reason_tag(reason: str | None) -> str:
    """``reason`` if it belongs to the fixed vocabulary (REASONS, or ``idp_`` + a registered OAuth error code),
    else ``"other"``: safe as a metric tag value whatever an identity provider sent."""
    if not isinstance(reason, str):
        return OTHER_REASON
    if reason in REASONS:
        return reason
    if reason.startswith("idp_") and reason[4:] in OAUTH_ERROR_CODES:
        return reason
    return OTHER_REASON


class KongAuthError(Exception):
    """Base class: something stopped a connection from being resolved.

    ``reason`` is a short machine-friendly tag (logs, ``check``); ``category`` and ``transient`` say what
    kind of failure it is and whether it is worth another attempt (see the module docstring).
    """

    reason: str = "error"
    category: ErrorCategory = ErrorCategory.INTERNAL
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        category: ErrorCategory | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        derived_category, derived_transient = self._derive()
        self.category = derived_category if category is None else category
        self.transient = derived_transient if transient is None else transient

    def _derive(self) -> tuple[ErrorCategory, bool]:
        """(category, transient) from the reason's entry in REASONS, else the class's defaults."""
        return REASONS.get(self.reason, (type(self).category, type(self).transient))


class ConfigError(KongAuthError):
    """The backend kwargs are invalid."""

    reason = "bad_config"
    category = ErrorCategory.CONFIG


class SecretFormatError(KongAuthError):
    """A secret read from the source is malformed (wrong JSON, bad or missing field)."""

    reason = "bad_secret"
    category = ErrorCategory.SECRET


class SecretIdError(KongAuthError):
    """A conn_id / key that would leave the configured path; refused before any request."""

    reason = "bad_secret_id"
    category = ErrorCategory.SECRET_ID


class SourceError(KongAuthError):
    """The secret source (Vault, AWS) could not be reached, refused us, or answered nonsense."""

    reason = "source_unavailable"
    category = ErrorCategory.SOURCE


class TokenEndpointError(KongAuthError):
    """The identity provider refused or failed to issue a token.

    ``oauth_error`` / ``oauth_error_description`` carry the IdP's RFC 6749 error, when it sent one. With an
    HTTP ``status``, the status alone decides: a 4xx is a refusal, a 5xx or a 429 is transient.
    """

    reason = "token_endpoint"
    category = ErrorCategory.IDENTITY_PROVIDER

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        oauth_error: str | None = None,
        oauth_error_description: str | None = None,
        category: ErrorCategory | None = None,
        transient: bool | None = None,
    ) -> None:
        self.status = status
        self.oauth_error = oauth_error
        self.oauth_error_description = oauth_error_description
        super().__init__(message, reason=reason, category=category, transient=transient)

    def _derive(self) -> tuple[ErrorCategory, bool]:
        status = self.status
        if status is None:
            return super()._derive()
        refused = 400 <= status < 500
        category = ErrorCategory.IDENTITY_PROVIDER_REFUSED if refused else ErrorCategory.IDENTITY_PROVIDER
        return category, status >= 500 or status == 429


class DeadlineExceeded(KongAuthError):
    """The resolution ran past its deadline (not transient: no time is left for another attempt)."""

    reason = "deadline"
    category = ErrorCategory.DEADLINE


class AccessDenied(KongAuthError):
    """``allowed_dags`` refuses this resolution; raised to Airflow as AirflowSecretsBackendAccessDenied."""

    reason = "access_denied"
    category = ErrorCategory.ACCESS_DENIED


def airflow_access_denied(message: str) -> Exception:
    """Airflow's AirflowSecretsBackendAccessDenied (task SDK >= 1.2.2), else a PermissionError."""
    try:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        return AirflowSecretsBackendAccessDenied(message)
    except ImportError:  # pragma: no cover - older task SDKs do not have it
        return PermissionError(message)
