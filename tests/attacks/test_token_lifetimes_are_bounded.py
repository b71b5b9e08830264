"""Attack: an identity provider answers lifetimes that break arithmetic (1e309, "1e309", NaN, -5) or that outlive any
sane cache (ten years). Through the real stack: the connection secret in OpenBao, the hostile token endpoint on
loopback, a real redis-server as the fleet cache.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from devstack.redis import Redis
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import KongAuthError, SecretFormatError, TokenEndpointError
from kong_secrets_backend.resolver import Resolution
from tests.attacks.answering_idp import AnsweringIdp, token_body, unsigned_jwt
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

TEN_YEARS = 10 * 365 * 86400
DAY = 86400


def connection_at(stack: Stack, token_url: str) -> str:
    conn_id = f"life_{uuid.uuid4().hex[:10]}"
    stack.put(f"connections/{conn_id}", stack.kong_connection(token_url=token_url))
    return conn_id


def resolve(backend: KongSecretsBackend, conn_id: str) -> Resolution:
    found = backend.resolve(conn_id)
    assert isinstance(found, Resolution)
    return found


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"1e309", "not a finite number"),  # JSON's way of writing infinity
        (b'"1e309"', "not a finite number"),
        (b"NaN", "not a finite number"),  # Python's JSON parser accepts it
        (b"-Infinity", "not a finite number"),
        (b"1" + b"0" * 400, "not a finite number"),  # an integer no float holds
        (b"-5", "expires_in=-5"),
        (b"0", "expires_in=0"),
        (b'"soon"', "non-numeric expires_in"),
        (b"true", "non-numeric expires_in"),
    ],
)
def test_an_expires_in_that_is_not_a_finite_positive_number_is_refused_and_nothing_is_cached(
    stack: Stack, idp: AnsweringIdp, raw: bytes, message: str
) -> None:
    name = uuid.uuid4().hex[:8]
    idp.answers[name] = (
        b'{"access_token": "hostile-lifetime-token", "token_type": "Bearer", "expires_in": ' + raw + b"}"
    )
    conn_id = connection_at(stack, idp.token_url(name))
    backend = KongSecretsBackend(**stack.backend_kwargs())
    for attempt in (1, 2):
        with pytest.raises(TokenEndpointError, match=message) as refused:
            backend.resolve(conn_id)
        assert refused.value.reason == "idp_garbage"
        assert idp.count(name) == attempt  # refused each time: no infinite token was cached


def test_a_numeric_string_expires_in_is_accepted(stack: Stack, idp: AnsweringIdp) -> None:
    idp.answers["str"] = token_body(expires_in="3600")
    found = resolve(KongSecretsBackend(**stack.backend_kwargs()), connection_at(stack, idp.token_url("str")))
    assert 3590 < found.token.remaining() <= 3600


def test_a_ten_year_lifetime_is_cut_to_max_token_ttl_in_memory_and_in_redis(
    stack: Stack, idp: AnsweringIdp, redis_server: Redis
) -> None:
    idp.answers["decade"] = token_body(expires_in=TEN_YEARS)
    conn_id = connection_at(stack, idp.token_url("decade"))
    backend = KongSecretsBackend(**stack.backend_kwargs(token_cache=redis_server.url))
    first = resolve(backend, conn_id)
    assert DAY - 10 < first.token.remaining() <= DAY  # the default max_token_ttl
    stored = redis_server.keys()
    (key,) = [k for k in stored if b":token:" in k]
    assert 0 < redis_server.client().pttl(key) <= DAY * 1000  # the fleet cache keeps it a day at most
    assert resolve(backend, conn_id).token.value == first.token.value and idp.count("decade") == 1


def test_a_ten_year_jwt_exp_is_cut_to_a_configured_max_token_ttl(stack: Stack, idp: AnsweringIdp) -> None:
    idp.answers["exp"] = token_body(unsigned_jwt({"sub": "orders", "exp": int(time.time()) + TEN_YEARS}))
    conn_id = connection_at(stack, idp.token_url("exp"))
    found = resolve(KongSecretsBackend(**stack.backend_kwargs(max_token_ttl=600)), conn_id)
    assert 590 < found.token.remaining() <= 600
    assert found.token.claims["exp"] > time.time() + DAY  # the claim is shown as sent; the backend's expiry is cut


def test_a_kong_jwt_ttl_above_max_token_ttl_is_refused_by_name(stack: Stack) -> None:
    conn_id = f"life_{uuid.uuid4().hex[:10]}"
    block = {"flow": "kong_jwt", "key": "life-key", "secret": "kong-jwt-secret-for-lifetimes-0123456789", "ttl": 7200}
    stack.put(f"connections/{conn_id}", stack.connection(block))
    LEAKS.plant(block["secret"])
    with pytest.raises(SecretFormatError, match=r"kong_auth\.ttl must be between 1 and 3600 seconds.*max_token_ttl"):
        KongSecretsBackend(**stack.backend_kwargs(max_token_ttl=3600)).resolve(conn_id)
    found = resolve(KongSecretsBackend(**stack.backend_kwargs()), conn_id)  # within the default day: signed
    assert 7190 < found.token.remaining() <= 7200


@pytest.mark.parametrize("value", [0, 30, 10**9, float("nan"), "600", True])
def test_max_token_ttl_itself_must_be_a_sane_number(value: object) -> None:
    from kong_secrets_backend.errors import ConfigError
    from tests.backend_settings import backend_settings

    with pytest.raises(ConfigError, match="max_token_ttl must be"):
        backend_settings(max_token_ttl=value)


def test_the_refusal_names_no_secret(stack: Stack, idp: AnsweringIdp, caplog: pytest.LogCaptureFixture) -> None:
    idp.answers["inf"] = b'{"access_token": "hostile-lifetime-token-2", "token_type": "Bearer", "expires_in": 1e309}'
    conn_id = connection_at(stack, idp.token_url("inf"))
    with pytest.raises(KongAuthError) as refused:
        KongSecretsBackend(**stack.backend_kwargs()).resolve(conn_id)
    text = str(refused.value) + caplog.text
    for secret in ("hostile-lifetime-token-2", *stack.planted_secrets()):
        assert secret not in text
    assert json.dumps(str(refused.value))  # one printable line
