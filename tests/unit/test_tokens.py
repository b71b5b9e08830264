from __future__ import annotations

import base64
import json

from kong_secrets_backend.tokens import RefreshPolicy, Token, jwt_parts


def _token(lifetime: float, remaining: float, now: float = 1_000_000.0) -> Token:
    expires = now + remaining
    return Token(value="tok-secret-value", issued_at=expires - lifetime, expires_at=expires)


def test_margin_is_max_of_60s_and_10_percent_capped_at_half_the_lifetime() -> None:
    policy = RefreshPolicy()
    assert policy.advisory_margin(_token(3600, 3600)) == 360
    assert policy.advisory_margin(_token(300, 300)) == 60
    assert policy.advisory_margin(_token(30, 30)) == 15


def test_fresh_then_advisory_then_mandatory() -> None:
    policy, now = RefreshPolicy(), 1_000_000.0
    assert policy.fresh(_token(3600, 1000, now), now)
    advisory = _token(3600, 200, now)
    assert not policy.fresh(advisory, now) and policy.usable(advisory, now)
    mandatory = _token(3600, 30, now)
    assert not policy.usable(mandatory, now)


def test_repr_hides_the_token_value() -> None:
    assert "tok-secret-value" not in repr(_token(300, 300))


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_jwt_parts_reads_header_and_payload_without_verifying() -> None:
    token = f"{_b64({'alg': 'RS256', 'kid': 'k1'})}.{_b64({'exp': 5, 'sub': 'x'})}.sig"
    assert jwt_parts(token) == ({"alg": "RS256", "kid": "k1"}, {"exp": 5, "sub": "x"})


def test_jwt_parts_of_an_opaque_token_is_none() -> None:
    assert jwt_parts("opaque-token") is None
    assert jwt_parts("a.b.c") is None


def test_jitter_only_moves_the_refresh_earlier_and_never_before_half_the_lifetime() -> None:
    policy = RefreshPolicy(min_margin=60, jitter=0.5)
    long, short = _token(300, 300), _token(30, 30)
    assert policy.refresh_at(long, u=0) == long.expires_at - 60
    assert policy.refresh_at(long, u=0.999) == long.expires_at - 60 * (1 + 0.5 * 0.999)
    assert policy.refresh_at(short, u=0.999) == short.expires_at - 15  # the margin is already half the lifetime
    assert RefreshPolicy(jitter=0).refresh_at(long) == long.expires_at - 60
    assert policy.usable_until(long) == long.expires_at - 12
