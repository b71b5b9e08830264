"""Errors carry a category and a transient flag, decided in errors.py; an IdP's words never decide either."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import kong_secrets_backend
from kong_secrets_backend.errors import (
    OAUTH_ERROR_CODES,
    REASONS,
    AccessDenied,
    ConfigError,
    DeadlineExceeded,
    ErrorCategory,
    KongAuthError,
    SecretFormatError,
    SecretIdError,
    SourceError,
    TokenEndpointError,
    reason_tag,
)
from kong_secrets_backend.flows.oauth_response import parse_token_response
from kong_secrets_backend.transport.http import HttpResponse

PACKAGE = Path(kong_secrets_backend.__file__).parent


def idp_answer(status: int, body: dict[str, object]) -> TokenEndpointError:
    """The error the token response parser raises for this answer of an identity provider."""
    resp = HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(resp, flow="client_credentials", default_ttl=300)
    return info.value


@pytest.mark.parametrize(
    ("status", "code", "category", "transient"),
    [
        (500, "server_error", ErrorCategory.IDENTITY_PROVIDER, True),
        (502, "server_error", ErrorCategory.IDENTITY_PROVIDER, True),
        (503, "temporarily_unavailable", ErrorCategory.IDENTITY_PROVIDER, True),
        (400, "invalid_scope", ErrorCategory.IDENTITY_PROVIDER_REFUSED, False),
        (401, "invalid_client", ErrorCategory.IDENTITY_PROVIDER_REFUSED, False),
        (403, "unauthorized_client", ErrorCategory.IDENTITY_PROVIDER_REFUSED, False),
    ],
)
def test_a_5xx_from_the_identity_provider_is_transient_and_a_4xx_is_not(
    status: int, code: str, category: ErrorCategory, transient: bool
) -> None:
    error = idp_answer(status, {"error": code})
    assert (error.category, error.transient) == (category, transient)


def test_a_429_from_the_identity_provider_is_a_refusal_worth_retrying() -> None:
    slow_down = idp_answer(429, {"error": "slow_down"})
    assert (slow_down.category, slow_down.transient) == (ErrorCategory.IDENTITY_PROVIDER_REFUSED, True)


@pytest.mark.parametrize(
    ("status", "code", "category", "transient"),
    [
        (400, "unreachable", ErrorCategory.IDENTITY_PROVIDER_REFUSED, False),  # reason idp_unreachable, yet a 400
        (400, "request_timeout", ErrorCategory.IDENTITY_PROVIDER_REFUSED, False),
        (503, "access_denied", ErrorCategory.IDENTITY_PROVIDER, True),
        (503, "vault_forbidden", ErrorCategory.IDENTITY_PROVIDER, True),
    ],
)
def test_the_status_decides_an_identity_provider_error_whatever_error_code_it_sends(
    status: int, code: str, category: ErrorCategory, transient: bool
) -> None:
    error = idp_answer(status, {"error": code})
    assert error.reason == f"idp_{code}"  # the detailed reason is kept as it was
    assert (error.category, error.transient) == (category, transient)


def test_an_unreachable_identity_provider_is_transient_and_its_nonsense_is_not() -> None:
    assert TokenEndpointError("refused", reason="idp_unreachable").transient is True
    garbage = TokenEndpointError("html", reason="idp_garbage", status=200)
    redirect = TokenEndpointError("302", reason="idp_redirect", status=302)
    for error in (garbage, redirect):
        assert (error.category, error.transient) == (ErrorCategory.IDENTITY_PROVIDER, False)


@pytest.mark.parametrize(
    "reason", ["vault_down", "vault_unreachable", "vault_error", "aws_unavailable", "aws_unreachable"]
)
def test_a_source_that_is_down_or_unreachable_is_transient(reason: str) -> None:
    error = SourceError("x", reason=reason)
    assert (error.category, error.transient) == (ErrorCategory.SOURCE, True)


@pytest.mark.parametrize("reason", ["vault_login", "vault_forbidden", "aws_forbidden"])
def test_a_source_that_refuses_our_credentials_is_a_refusal_and_not_transient(reason: str) -> None:
    error = SourceError("x", reason=reason)
    assert (error.category, error.transient) == (ErrorCategory.SOURCE_REFUSED, False)


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("bad_config", ErrorCategory.CONFIG),
        ("credentials_missing", ErrorCategory.SECRET),
        ("bad_path", ErrorCategory.SECRET),
    ],
)
def test_a_source_error_about_our_own_settings_or_secrets_is_not_a_source_failure(
    reason: str, category: ErrorCategory
) -> None:
    assert SourceError("x", reason=reason).category is category


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (ConfigError("x"), ErrorCategory.CONFIG),
        (SecretFormatError("x"), ErrorCategory.SECRET),
        (SecretIdError("x"), ErrorCategory.SECRET_ID),
        (SourceError("x"), ErrorCategory.SOURCE),
        (TokenEndpointError("x"), ErrorCategory.IDENTITY_PROVIDER),
        (DeadlineExceeded("x"), ErrorCategory.DEADLINE),
        (AccessDenied("x"), ErrorCategory.ACCESS_DENIED),
        (KongAuthError("x"), ErrorCategory.INTERNAL),
        (KongAuthError("x", reason="internal"), ErrorCategory.INTERNAL),
    ],
)
def test_each_error_class_has_a_category_and_is_not_transient_by_default(
    error: KongAuthError, category: ErrorCategory
) -> None:
    assert (error.category, error.transient) == (category, False)


def test_an_unknown_reason_takes_the_defaults_of_its_class() -> None:
    new = SourceError("x", reason="vault_something_new")
    assert (new.category, new.transient) == (ErrorCategory.SOURCE, False)
    assert KongAuthError("x", reason="something_new").category is ErrorCategory.INTERNAL


def test_a_raise_site_may_set_the_category_and_the_flag_itself() -> None:
    error = SourceError("x", reason="vault_tls", category=ErrorCategory.CONFIG, transient=True)
    assert (error.reason, error.category, error.transient) == ("vault_tls", ErrorCategory.CONFIG, True)
    idp = TokenEndpointError("x", status=503, transient=False)
    assert (idp.category, idp.transient) == (ErrorCategory.IDENTITY_PROVIDER, False)


def test_every_reason_the_package_raises_is_in_the_closed_vocabulary() -> None:
    raised = set()
    for path in PACKAGE.rglob("*.py"):
        raised |= set(re.findall(r'reason="([a-z0-9_]+)"', path.read_text()))
        raised |= set(re.findall(r'reason = "([a-z0-9_]+)"', path.read_text()))  # class defaults
        raised |= set(re.findall(r'"(aws_[a-z_]+)" if ', path.read_text()))  # reason = "aws_x" if ... else "aws_y"
    assert raised, "the scan found no reasons"
    assert raised - set(REASONS) == set()


def test_the_reason_tag_keeps_only_the_fixed_vocabulary() -> None:
    assert reason_tag("vault_down") == "vault_down"
    assert reason_tag("idp_invalid_client") == "idp_invalid_client"
    assert all(reason_tag(f"idp_{code}") == f"idp_{code}" for code in OAUTH_ERROR_CODES)
    for free_text in ("idp_Weird Reason/with:chars", "idp_" + "x" * 500, "idp_evil.name:1|c", "", None, "idp_"):
        assert reason_tag(free_text) == "other"


def test_errors_keep_reason_category_and_flag_through_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(TokenEndpointError("busy", reason="idp_http_error", status=503)))
    assert (error.reason, error.category, error.transient, error.status) == (
        "idp_http_error",
        ErrorCategory.IDENTITY_PROVIDER,
        True,
        503,
    )
