from __future__ import annotations

import pytest

from kong_secrets_backend.errors import SecretFormatError, SourceError, TokenEndpointError
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.retry import is_transient, with_retries


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (TokenEndpointError("x", status=503), True),
        (TokenEndpointError("x", status=429), True),
        (TokenEndpointError("x", reason="idp_unreachable"), True),
        (TokenEndpointError("x", status=401, oauth_error="invalid_client"), False),
        (TokenEndpointError("x", status=400, oauth_error="invalid_scope"), False),
        (SourceError("x", reason="vault_down"), True),
        (SourceError("x", reason="vault_forbidden"), False),
        (SourceError("x", reason="aws_unavailable"), True),  # throttled, or a 5xx
        (SourceError("x", reason="aws_unreachable"), True),
        (SourceError("x", reason="aws_forbidden"), False),
        (SecretFormatError("x"), False),
    ],
)
def test_only_transient_failures_are_retried(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_retries_stop_after_three_attempts_and_raise_the_last_error() -> None:
    calls = []

    def always_503() -> None:
        calls.append(1)
        raise TokenEndpointError("busy", status=503)

    with pytest.raises(TokenEndpointError, match="busy"):
        with_retries(always_503, Deadline(5), what="test")
    assert len(calls) == 3


def test_no_retry_is_started_that_the_deadline_cannot_hold() -> None:
    calls = []

    def always_503() -> None:
        calls.append(1)
        raise TokenEndpointError("busy", status=503)

    with pytest.raises(TokenEndpointError):
        with_retries(always_503, Deadline(0.1), what="test")
    assert len(calls) == 1


def test_only_errors_flagged_transient_are_retried_whatever_their_reason() -> None:
    flagged, unflagged, foreign = [], [], []

    def marked_transient() -> None:
        flagged.append(1)
        raise SourceError("odd", reason="vault_tls", transient=True)  # a reason that is not transient by itself

    def marked_not_transient() -> None:
        unflagged.append(1)
        raise TokenEndpointError("busy", status=503, transient=False)

    def not_ours() -> None:
        foreign.append(1)
        raise ConnectionError("not a KongAuthError")

    with pytest.raises(SourceError):
        with_retries(marked_transient, Deadline(5), what="test")
    with pytest.raises(TokenEndpointError):
        with_retries(marked_not_transient, Deadline(5), what="test")
    with pytest.raises(ConnectionError):
        with_retries(not_ours, Deadline(5), what="test")
    assert (len(flagged), len(unflagged), len(foreign)) == (3, 1, 1)
