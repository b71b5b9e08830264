"""Compact JWS signing and verification (flows/jws.py), cross-checked with PyJWT."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from kong_secrets_backend.flows import jws
from kong_secrets_backend.flows.keys import hmac_key, private_key

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
CLAIMS = {"iss": "airflow", "exp": 2_000_000_000, "nested": {"a": [1, 2]}}
HMAC_SECRET = "h" * 64


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _jwk(public_key: Any, kid: str) -> dict[str, Any]:
    algo = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    return {**json.loads(algo.to_jwk(public_key)), "kid": kid, "use": "sig"}


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_verify_with_pyjwt(alg: str) -> None:
    token = jws.encode(CLAIMS, hmac_key(HMAC_SECRET, alg=alg, field_name="secret", alg_field="algorithm"))
    assert jwt.decode(token, HMAC_SECRET, algorithms=[alg]) == CLAIMS


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS512"])
def test_rsa_tokens_verify_with_pyjwt(alg: str) -> None:
    key = private_key(_pem(RSA_KEY), alg=alg, kid="r1", field_name="private_key", alg_field="alg")
    token = jws.encode(CLAIMS, key)
    assert jwt.get_unverified_header(token)["kid"] == "r1"
    assert jwt.decode(token, RSA_KEY.public_key(), algorithms=[alg]) == CLAIMS


@pytest.mark.parametrize("alg", sorted(EC_KEYS))
def test_ec_tokens_use_fixed_size_signatures_that_pyjwt_verifies(alg: str) -> None:
    key = private_key(_pem(EC_KEYS[alg]), alg=None, kid=None, field_name="private_key", alg_field="alg")
    assert key.alg == alg
    token = jws.encode(CLAIMS, key)
    size = {"ES256": 64, "ES384": 96, "ES512": 132}[alg]
    assert len(jws.b64url_decode(token.split(".")[2])) == size
    assert jwt.decode(token, EC_KEYS[alg].public_key(), algorithms=[alg]) == CLAIMS


@pytest.mark.parametrize("alg", ["RS256", "PS384", "ES256", "ES384", "ES512"])
def test_verify_accepts_pyjwt_tokens_against_a_jwks(alg: str) -> None:
    key = EC_KEYS[alg] if alg.startswith("ES") else RSA_KEY
    token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": "k-good"})
    jwks = {"keys": [_jwk(RSA_KEY.public_key(), "k-other"), _jwk(key.public_key(), "k-good")]}
    header, payload = jws.verify(token, jwks, algorithms=(alg,))
    assert header["kid"] == "k-good" and payload == CLAIMS


def test_verify_refuses_a_signature_by_another_key() -> None:
    token = jwt.encode(CLAIMS, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k"})
    with pytest.raises(jws.JwsError, match="signature does not verify"):
        jws.verify(token, {"keys": [_jwk(EC_KEYS["ES256"].public_key(), "k")]}, algorithms=("ES256",))


def test_verify_refuses_a_tampered_payload() -> None:
    token = jwt.encode(CLAIMS, RSA_KEY, algorithm="RS256", headers={"kid": "k"})
    header, _, sig = token.split(".")
    forged = jws.b64url(json.dumps({**CLAIMS, "iss": "admin"}).encode())
    with pytest.raises(jws.JwsError, match="signature does not verify"):
        jws.verify(f"{header}.{forged}.{sig}", {"keys": [_jwk(RSA_KEY.public_key(), "k")]}, algorithms=("RS256",))


@pytest.mark.parametrize(
    ("token_alg", "allowed", "message"),
    [("HS256", ("RS256",), "alg 'HS256' is not one of RS256"), ("RS256", ("ES256",), "is not one of ES256")],
)
def test_verify_refuses_an_algorithm_it_was_not_told_to_accept(
    token_alg: str, allowed: tuple[str], message: str
) -> None:
    key: Any = HMAC_SECRET if token_alg == "HS256" else RSA_KEY
    token = jwt.encode(CLAIMS, key, algorithm=token_alg, headers={"kid": "k"})
    with pytest.raises(jws.JwsError, match=message):
        jws.verify(token, {"keys": [_jwk(RSA_KEY.public_key(), "k")]}, algorithms=allowed)


def test_verify_names_an_unknown_kid() -> None:
    token = jwt.encode(CLAIMS, RSA_KEY, algorithm="RS256", headers={"kid": "rotated"})
    with pytest.raises(jws.JwsError, match="no key with kid 'rotated'"):
        jws.verify(token, {"keys": [_jwk(RSA_KEY.public_key(), "k")]}, algorithms=("RS256",))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "e30.e30.!!"])
def test_verify_refuses_garbage(token: str) -> None:
    with pytest.raises(jws.JwsError):
        jws.verify(token, {"keys": []}, algorithms=("RS256",))


def test_a_corrupt_jwk_is_a_verification_error_not_a_crash() -> None:
    token = jwt.encode(CLAIMS, EC_KEYS["ES256"], algorithm="ES256", headers={"kid": "k"})
    good = _jwk(EC_KEYS["ES256"].public_key(), "k")
    with pytest.raises(jws.JwsError, match="is not a valid EC key"):
        jws.verify(token, {"keys": [{**good, "x": good["y"]}]}, algorithms=("ES256",))
