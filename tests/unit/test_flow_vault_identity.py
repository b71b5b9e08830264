"""flow vault_identity against a stand-in signer (the real Vault is in tests/integration/test_flows.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from kong_secrets_backend.errors import SecretFormatError, SourceError
from kong_secrets_backend.flows import build_flow, parse_credential, vault_identity
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS, backend_settings


class Signer:
    """Signs like Vault's identity/oidc/token/<role>, serves its JWKS, and can rotate its key."""

    def __init__(self) -> None:
        self.jwks_reads = 0
        self.signs = 0
        self.published: list[tuple[str, Any]] = []
        self.rotate()

    def rotate(self) -> None:
        self.kid = f"k{len(self.published)}"
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.published.append((self.kid, self.key))
        self.claims: dict[str, Any] = {"iss": "https://vault/v1/identity/oidc", "aud": "kong", "sub": "entity-1"}

    def sign_identity_token(self, role: str, deadline: Deadline) -> str:
        self.signs += 1
        now = int(time.time())
        return jwt.encode({**self.claims, "iat": now, "exp": now + 300}, self.key, "ES256", headers={"kid": self.kid})

    def identity_jwks(self, deadline: Deadline) -> dict[str, Any]:
        self.jwks_reads += 1
        keys = [{**json.loads(ECAlgorithm.to_jwk(k.public_key())), "kid": kid} for kid, k in self.published]
        return {"keys": keys}


@pytest.fixture(autouse=True)
def _no_cached_jwks() -> None:
    vault_identity.forget_jwks()


def identity_flow(signer: Any, vault_token: str = "settings-a") -> Any:
    """The flow for backend settings that log in to Vault with vault_token (who logged in is the identity)."""
    settings = backend_settings(token=vault_token)
    cred = parse_credential({"flow": "vault_identity", "role": "kong-orders"}, settings=settings, version=None)
    return build_flow(cred, http=HttpTransport(), settings=settings, source=signer)


def test_the_token_is_verified_and_its_expiry_read_from_exp() -> None:
    signer = Signer()
    token = identity_flow(signer).mint(Deadline(5))
    assert 295 <= token.remaining() <= 300
    assert token.kid == "k0" and token.claims["sub"] == "entity-1"
    identity_flow(signer).mint(Deadline(5))
    assert signer.jwks_reads == 1  # the JWKS is cached


def test_a_rotated_key_fetches_the_jwks_again_once() -> None:
    signer = Signer()
    flow = identity_flow(signer)
    flow.mint(Deadline(5))
    signer.rotate()
    assert flow.mint(Deadline(5)).kid == "k1"
    assert signer.jwks_reads == 2


def test_a_token_that_does_not_verify_is_refused() -> None:
    signer = Signer()
    signer.published = [(signer.kid, ec.generate_private_key(ec.SECP256R1()))]  # the JWKS holds another key
    with pytest.raises(SourceError, match="does not verify against Vault's JWKS: signature") as info:
        identity_flow(signer).mint(Deadline(5))
    assert info.value.reason == "vault_identity_token"


def test_a_token_without_exp_is_refused() -> None:
    signer = Signer()
    signer.sign_identity_token = lambda role, deadline: jwt.encode(  # type: ignore[method-assign]
        {"sub": "e"}, signer.key, "ES256", headers={"kid": signer.kid}
    )
    with pytest.raises(SourceError, match="has no future exp claim"):
        identity_flow(signer).mint(Deadline(5))


def test_the_cache_key_depends_on_who_logged_in_to_vault() -> None:
    signer = Signer()
    assert identity_flow(signer, "settings-a").cache_key() != identity_flow(signer, "settings-b").cache_key()


def test_a_source_that_cannot_sign_is_refused() -> None:
    cred = parse_credential({"flow": "vault_identity", "role": "kong-orders"}, settings=SETTINGS, version=None)
    with pytest.raises(SecretFormatError, match="needs source 'vault'"):
        build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)


def test_a_vault_token_living_longer_than_max_token_ttl_is_kept_for_max_token_ttl_only() -> None:
    signer = Signer()
    settings = backend_settings(token="settings-a", max_token_ttl=120)
    cred = parse_credential({"flow": "vault_identity", "role": "kong-orders"}, settings=settings, version=None)
    token = build_flow(cred, http=HttpTransport(), settings=settings, source=signer).mint(Deadline(5))
    assert 115 <= token.remaining() <= 120  # Vault said 300 s


def test_the_cache_key_holds_no_digest_of_the_vault_login() -> None:
    import hashlib

    from kong_secrets_backend.settings import parse_backend_kwargs

    flow = identity_flow(Signer(), vault_token="settings-a")
    fingerprint = parse_backend_kwargs({"url": "http://127.0.0.1:9", "token": "settings-a"}).fingerprint
    assert hashlib.sha256(fingerprint.encode()).hexdigest()[:32] not in flow.cache_key()
