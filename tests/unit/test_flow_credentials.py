"""The kong_auth block of every flow: typed credentials, keys imported once, mistakes named by field."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows import parse_credential
from kong_secrets_backend.flows.client_credentials import ClientCredentials
from kong_secrets_backend.flows.key_auth import KeyAuth
from kong_secrets_backend.flows.kong_jwt import KongJwt
from kong_secrets_backend.flows.vault_identity import VaultIdentity
from tests.backend_settings import SETTINGS, backend_settings


def pem(key: Any, *, password: bytes | None = None, fmt: str = "pkcs8") -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private_format = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }[fmt]
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption).decode()


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = pem(RSA)
P256_PEM = pem(ec.generate_private_key(ec.SECP256R1()), fmt="traditional")
P384_PEM = pem(ec.generate_private_key(ec.SECP384R1()))
PKJWT = {
    "token_url": "https://idp.example.com/oauth2/token",
    "client_id": "airflow-orders",
    "client_auth_method": "private_key_jwt",
    "private_key": RSA_PEM,
    "kid": "k1",
}
KONG_HS = {"flow": "kong_jwt", "key": "airflow-key", "secret": "kong-jwt-shared-secret-value"}


def parse(block: dict[str, Any], *, version: str | None = None, source: str = "vault") -> Any:
    settings = SETTINGS if source == "vault" else backend_settings(source=source)
    return parse_credential(block, settings=settings, version=version)


def refused(block: dict[str, Any], message: str, **kw: Any) -> SecretFormatError:
    with pytest.raises(SecretFormatError, match=message) as info:
        parse(block, **kw)
    return info.value


# --- client_credentials: private_key_jwt, client_secret_jwt, issuer ---------------------------------------------


@pytest.mark.parametrize(
    ("key_pem", "alg"), [(RSA_PEM, "RS256"), (P256_PEM, "ES256"), (P384_PEM, "ES384")], ids=["rsa", "p256", "p384"]
)
def test_private_key_jwt_alg_defaults_from_the_key(key_pem: str, alg: str) -> None:
    cred = parse({**PKJWT, "private_key": key_pem})
    assert isinstance(cred, ClientCredentials)
    assert cred.signing_key is not None
    assert (cred.signing_key.alg, cred.signing_key.kid) == (alg, "k1")
    assert key_pem not in repr(cred) and "BEGIN" not in repr(cred.signing_key)


def test_private_key_alone_implies_private_key_jwt() -> None:
    block = {k: v for k, v in PKJWT.items() if k != "client_auth_method"}
    assert parse(block).client_auth_method == "private_key_jwt"


def test_a_pem_with_escaped_newlines_is_accepted() -> None:
    cred = parse({**PKJWT, "private_key": RSA_PEM.replace("\n", "\\n")})
    assert cred.signing_key is not None and cred.signing_key.alg == "RS256"


def test_the_key_is_imported_once_when_the_secret_is_parsed() -> None:
    cred = parse(PKJWT)
    assert cred.signing_key is not None
    assert isinstance(cred.signing_key.key, rsa.RSAPrivateKey)


def test_client_secret_jwt_defaults_to_hs256() -> None:
    cred = parse(
        {**PKJWT, "client_auth_method": "client_secret_jwt", "private_key": None, "client_secret": "s3cret-value"}
    )
    assert cred.signing_key is not None and cred.signing_key.alg == "HS256"
    assert cred.secret_values() == ("s3cret-value",)


def test_issuer_replaces_token_url() -> None:
    cred = parse({**PKJWT, "token_url": None, "issuer": "https://idp.example.com/realms/airflow/"})
    assert cred.token_url is None and cred.issuer == "https://idp.example.com/realms/airflow"


def test_cache_key_changes_with_the_key_and_kid_but_holds_no_secret() -> None:
    base = parse(PKJWT).cache_key()
    other_key = parse({**PKJWT, "private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))})
    other_kid = parse({**PKJWT, "kid": "k2"})
    assert len({base, other_key.cache_key(), other_kid.cache_key()}) == 3
    assert "BEGIN" not in base


def test_private_key_secret_values_cover_the_pem_as_stored_and_escaped() -> None:
    values = parse(PKJWT).secret_values()
    assert RSA_PEM in values and RSA_PEM.strip().replace("\n", "\\n") in values


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alg": "ES256"}, "alg 'ES256' does not fit an RSA key"),
        ({"alg": "HS256"}, "alg 'HS256' does not fit an RSA key"),
        ({"private_key": P256_PEM, "alg": "ES384"}, "does not fit a secp256r1 key"),
        ({"private_key": pem(RSA, password=b"pw")}, "private_key is encrypted"),
        ({"private_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}, "public key or certificate"),
        ({"private_key": "not a key"}, "must be a PEM private key \\(not PEM given\\)"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "not a readable PEM"),
        ({"private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}, "1024-bit RSA key"),
        ({"private_key": pem(ed25519.Ed25519PrivateKey.generate())}, "RSA or EC"),
        ({"private_key": None}, "private_key is missing \\(required by client_auth_method private_key_jwt\\)"),
        ({"client_secret": "x-secret-value"}, "client_secret is not used with private_key_jwt"),
        ({"client_auth_method": "client_secret_basic", "client_secret": "x-secret"}, "only used with private_key_jwt"),
        ({"client_auth_method": "client_secret_jwt", "private_key": None}, "client_secret is missing"),
        ({"issuer": "https://idp.example.com"}, "both token_url and issuer"),
        ({"token_url": None}, "token_url is missing \\(or give issuer"),
        ({"token_url": None, "issuer": "http://idp.example.com"}, "issuer uses http:// on a non-loopback host"),
        ({"token_url": None, "issuer": "https://idp.example.com/?x=1"}, "issuer must not have a query"),
        ({"token_params": {"client_assertion_type": "x"}}, "must not set client_assertion_type"),
    ],
)
def test_bad_client_credentials_are_refused_by_field(change: dict[str, Any], message: str) -> None:
    error = refused({**PKJWT, **change}, message)
    assert "BEGIN" not in str(error) and "x-secret" not in str(error)


def test_basic_auth_refuses_alg_and_kid() -> None:
    refused(
        {"token_url": PKJWT["token_url"], "client_id": "c", "client_secret": "s-value", "kid": "k"},
        "only used with \\*_jwt methods",
    )


# --- kong_jwt ----------------------------------------------------------------------------------------------------


def test_kong_jwt_defaults() -> None:
    cred = parse(KONG_HS)
    assert isinstance(cred, KongJwt)
    assert (cred.algorithm, cred.key_claim_name, cred.ttl, cred.nbf, cred.header_name) == (
        "HS256",
        "iss",
        300.0,
        False,
        "Authorization",
    )
    assert cred.header_scheme == "Bearer"
    assert "kong-jwt-shared-secret-value" not in repr(cred)
    assert cred.secret_values() == ("kong-jwt-shared-secret-value",)


@pytest.mark.parametrize(("key_pem", "alg"), [(RSA_PEM, "RS256"), (P256_PEM, "ES256")], ids=["rsa", "ec"])
def test_kong_jwt_algorithm_defaults_from_a_private_key(key_pem: str, alg: str) -> None:
    cred = parse({"flow": "kong_jwt", "key": "k", "private_key": key_pem})
    assert cred.algorithm == alg


def test_kong_jwt_ttl_is_capped_inside_maximum_expiration() -> None:
    assert parse({**KONG_HS, "ttl": 3600, "maximum_expiration": 900}).ttl == 890
    assert parse({**KONG_HS, "ttl": 60, "maximum_expiration": 900}).ttl == 60
    assert parse({**KONG_HS, "ttl": 3600, "maximum_expiration": 0}).ttl == 3600  # Kong: 0 = no maximum


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secret": None}, "secret \\(HS256/384/512\\) or kong_auth.private_key \\(RS\\*/ES\\*\\) is missing"),
        ({"private_key": RSA_PEM}, "both secret and private_key"),
        ({"algorithm": "RS256"}, "algorithm 'RS256' cannot be used with secret"),
        ({"secret": None, "private_key": RSA_PEM, "algorithm": "HS256"}, "HS256 needs secret"),
        ({"secret": None, "private_key": RSA_PEM, "algorithm": "none"}, "algorithm 'none' is not supported"),
        ({"ttl": 0}, "ttl must be between"),
        ({"ttl": "soon"}, "ttl must be a number of seconds"),
        ({"ttl": True}, "ttl must be a number of seconds"),
        ({"maximum_expiration": 5}, "maximum_expiration must be more than"),
        ({"claims": {"exp": 1}}, "claims must not set exp"),
        ({"claims": {"jti": "fixed"}}, "claims must not set jti"),
        ({"claims": {"iss": "other"}}, "claims must not set iss"),
        ({"claims": ["x"]}, "claims must be a JSON object"),
        ({"key_claim_name": "a b"}, "key_claim_name must be a plain claim name"),
        ({"nbf": "yes"}, "nbf must be true or false"),
        ({"key": None}, "key is missing \\(required by flow 'kong_jwt'\\)"),
        ({"client_id": "x"}, "unknown fields: client_id \\(flow 'kong_jwt'\\)"),
    ],
)
def test_bad_kong_jwt_blocks_are_refused_by_field(change: dict[str, Any], message: str) -> None:
    error = refused({**KONG_HS, **change}, message)
    assert "kong-jwt-shared-secret-value" not in str(error)


def test_kong_jwt_key_claim_name_is_reserved_in_claims() -> None:
    refused({**KONG_HS, "key_claim_name": "kid", "claims": {"kid": "x"}}, "claims must not set kid")


# --- key_auth ----------------------------------------------------------------------------------------------------


def test_key_auth_sends_the_raw_key_in_apikey_by_default() -> None:
    cred = parse({"flow": "key_auth", "key": "kak-0123456789abcdef"})
    assert isinstance(cred, KeyAuth)
    assert (cred.header_name, cred.header_scheme) == ("apikey", "")
    assert "kak-0123456789abcdef" not in repr(cred)
    assert parse({"flow": "key_auth", "key": "kak-0123456789abcdef", "header_name": "X-API-Key"}).header_name == (
        "X-API-Key"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "has space"}, "must not contain spaces"),
        ({"key": None}, "key is missing"),
        ({"secret": "x"}, "unknown"),
    ],
)
def test_bad_key_auth_blocks_are_refused(change: dict[str, Any], message: str) -> None:
    refused({"flow": "key_auth", "key": "kak-0123456789abcdef", **change}, message)


def test_key_auth_token_keys_differ_by_key_and_no_key_holds_the_key() -> None:
    from kong_secrets_backend.flows import build_flow
    from kong_secrets_backend.transport.http import HttpTransport
    from tests.backend_settings import NO_SOURCE

    cred_a = parse({"flow": "key_auth", "key": "kak-aaaaaaaaaaaa"})
    cred_b = parse({"flow": "key_auth", "key": "kak-bbbbbbbbbbbb"})
    http = HttpTransport()
    flow_a, flow_b = (build_flow(c, http=http, settings=SETTINGS, source=NO_SOURCE) for c in (cred_a, cred_b))
    a, b = flow_a.token_key(), flow_b.token_key()  # type: ignore[attr-defined]
    assert a != b and "kak-" not in a
    assert cred_a.cache_key() == cred_b.cache_key() and "kak-" not in cred_a.cache_key()


# --- vault_identity ----------------------------------------------------------------------------------------------


def test_vault_identity_needs_only_a_role() -> None:
    cred = parse({"flow": "vault_identity", "role": "kong-orders"})
    assert isinstance(cred, VaultIdentity)
    assert (cred.role, cred.header_name, cred.secret_values()) == ("kong-orders", "Authorization", ())


def test_vault_identity_is_refused_with_another_source() -> None:
    refused({"flow": "vault_identity", "role": "kong-orders"}, "needs source 'vault'.*'aws'", source="aws")


@pytest.mark.parametrize("role", ["../sys", "a/b", "", "x" * 200])
def test_vault_identity_role_must_be_a_plain_name(role: str) -> None:
    with pytest.raises(SecretFormatError, match="role"):
        parse({"flow": "vault_identity", "role": role})


def test_an_unknown_flow_lists_the_supported_ones() -> None:
    refused({"flow": "saml"}, "flow 'saml' is unknown \\(supported: client_credentials, kong_jwt, key_auth, vault_id")


def test_secrets_are_masked_as_soon_as_the_block_is_parsed_even_when_it_is_refused() -> None:
    from airflow.sdk._shared.secrets_masker import redact

    secret = "kong-jwt-masked-early-secret"
    with pytest.raises(SecretFormatError):
        parse({**KONG_HS, "secret": secret, "ttl": -1})
    parse(PKJWT)
    escaped = RSA_PEM.strip().replace("\n", "\\n")
    redacted = str(redact(f"secret={secret} pem={RSA_PEM} escaped={escaped}"))
    assert secret not in redacted and "PRIVATE KEY" not in redacted
