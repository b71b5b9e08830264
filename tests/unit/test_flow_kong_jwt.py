"""flow kong_jwt: the token Kong's jwt plugin expects, signed by the backend with the consumer's credential."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kong_secrets_backend.flows import build_flow, parse_credential
from kong_secrets_backend.flows.kong_jwt import KongJwtFlow
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS

SECRET = "kong-consumer-jwt-secret-0123456789abcdef-padded-to-sixty-four-bytes-for-hs512"


def kong_flow(**block: Any) -> KongJwtFlow:
    cred = parse_credential({"flow": "kong_jwt", "key": "airflow-key", **block}, settings=SETTINGS, version=None)
    flow = build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)
    assert isinstance(flow, KongJwtFlow)
    return flow


def test_hs256_token_carries_the_key_in_iss_and_expires_after_ttl() -> None:
    before = int(time.time())
    token = kong_flow(secret=SECRET, ttl=120).mint(Deadline(1))
    claims = jwt.decode(token.value, SECRET, algorithms=["HS256"])
    assert claims["iss"] == "airflow-key"
    assert before <= claims["iat"] <= time.time()
    assert claims["exp"] == claims["iat"] + 120
    assert "nbf" not in claims
    assert token.expires_at == claims["exp"] and token.flow == "kong_jwt"
    assert token.claims["iss"] == "airflow-key"
    assert jwt.get_unverified_header(token.value) == {"alg": "HS256", "typ": "JWT"}


def test_key_claim_name_nbf_and_extra_claims() -> None:
    token = kong_flow(
        secret=SECRET, algorithm="HS512", key_claim_name="kid", nbf=True, claims={"sub": "airflow", "roles": ["r"]}
    ).mint(Deadline(1))
    claims = jwt.decode(token.value, SECRET, algorithms=["HS512"])
    assert claims["kid"] == "airflow-key" and "iss" not in claims
    assert claims["nbf"] == claims["iat"]
    assert (claims["sub"], claims["roles"]) == ("airflow", ["r"])


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
    ids=["rs256", "es256"],
)
def test_rsa_and_ec_credentials_sign_with_the_private_key(key: Any, alg: str) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = kong_flow(private_key=pem).mint(Deadline(1))
    assert jwt.decode(token.value, key.public_key(), algorithms=[alg])["iss"] == "airflow-key"


def test_exp_never_goes_beyond_maximum_expiration() -> None:
    token = kong_flow(secret=SECRET, ttl=7200, maximum_expiration=600).mint(Deadline(1))
    claims = jwt.decode(token.value, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 590


def test_each_mint_signs_a_new_token_for_its_own_time(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = kong_flow(secret=SECRET)
    first = flow.mint(Deadline(1))
    later = time.time() + 100
    monkeypatch.setattr("kong_secrets_backend.flows.kong_jwt.time.time", lambda: later)
    second = flow.mint(Deadline(1))
    assert second.value != first.value
    assert jwt.decode(second.value, SECRET, algorithms=["HS256"], options={"verify_iat": False})["iat"] == int(later)


def test_repr_and_cache_key_show_no_secret_and_secrets_stay_apart_in_process() -> None:
    flow = kong_flow(secret=SECRET)
    assert SECRET not in repr(flow) and SECRET not in flow.cache_key()
    other = kong_flow(secret=SECRET + "x")
    assert flow.cache_key() == other.cache_key()  # a shared cache name holds no secret-derived material
    assert flow.token_key() != other.token_key()  # the process never confuses the tokens of two secrets
    assert SECRET not in flow.token_key()
