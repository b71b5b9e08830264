"""``flow: kong_jwt``: the backend signs a JWT itself with a Kong consumer's jwt credential (Kong's jwt plugin).

No IdP is involved. The credential (:class:`KongJwt`) is the consumer's ``key`` with its ``secret``
(HS256/384/512) or RSA/EC private key, imported once by :func:`parse`. :class:`KongJwtFlow` signs: the key
goes in ``key_claim_name`` (default ``iss``, Kong's default), ``iat`` is now, ``exp`` is now + ttl (already
capped below the plugin's ``maximum_expiration``), ``nbf`` = ``iat`` when asked for, plus any extra
``claims``. The broker caches the signed token and re-signs it ahead of expiry like any other token; the
cache identity is :meth:`KongJwt.cache_key`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows import FlowKind, jws
from kong_secrets_backend.flows.fields import DEFAULT_HEADER, Fields
from kong_secrets_backend.flows.identity import local_token_key
from kong_secrets_backend.flows.keys import ASYMMETRIC_ALGS, HMAC_ALGS, SigningKey, hmac_key, pem_mask_values
from kong_secrets_backend.flows.keys import private_key as import_private_key
from kong_secrets_backend.tokens import Token, claims_summary

if TYPE_CHECKING:
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretSource
    from kong_secrets_backend.transport.deadline import Deadline
    from kong_secrets_backend.transport.http import HttpTransport

NAME = "kong_jwt"
DEFAULT_TTL = 300.0
# The longest ttl is the backend's max_token_ttl setting (86400 s unless configured).
# Kong compares exp with its own clock: stay this far inside maximum_expiration when capping the TTL.
MAXIMUM_EXPIRATION_MARGIN = 10.0

FIELDS = frozenset(
    {"key", "key_claim_name", "secret", "private_key", "algorithm", "ttl", "maximum_expiration", "nbf", "claims"}
)
_CLAIM_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")


@dataclass(frozen=True)
class KongJwt:
    """A Kong jwt credential (``key`` + ``secret`` or RSA/EC key pair) and how to shape the token."""

    key: str
    signing_key: SigningKey = field(repr=False, compare=False)
    key_claim_name: str = "iss"
    ttl: float = DEFAULT_TTL  # already capped by maximum_expiration
    nbf: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    header_name: str = DEFAULT_HEADER
    version: str | None = None

    flow = NAME
    header_scheme = "Bearer"

    @property
    def algorithm(self) -> str:
        return self.signing_key.alg

    @property
    def consumer(self) -> str:
        return self.key

    def secret_values(self) -> tuple[str, ...]:
        values: tuple[str, ...] = (self.secret,) if self.secret else ()
        return values + (pem_mask_values(self.private_key) if self.private_key else ())

    def cache_key(self) -> str:
        """The token's identity: the consumer's key (public: it is in every token), the algorithm, the public
        key's fingerprint (none for an HMAC secret), the token's shape and the version. Never the secret."""
        material = {
            "flow": self.flow,
            "key": self.key,
            "key_claim_name": self.key_claim_name,
            "signing_key": [self.signing_key.alg, self.signing_key.fingerprint],
            "ttl": self.ttl,
            "nbf": self.nbf,
            "claims": self.claims,
            "version": self.version,
        }
        return "kj:" + hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def parse(block: Mapping[str, Any], *, settings: Settings, version: str | None) -> KongJwt:
    """The credential of a kong_jwt block; its key is imported (or its secret read) once, here."""
    f = Fields(block, allowed=FIELDS, flow=NAME)
    key = f.required_str("key")
    claim_name = f.optional_str("key_claim_name") or "iss"
    if not set(claim_name) <= _CLAIM_NAME_CHARS:
        raise SecretFormatError("kong_auth.key_claim_name must be a plain claim name")
    secret, pem = f.optional_str("secret"), f.optional_str("private_key")
    algorithm = f.optional_str("algorithm")
    if secret and pem:
        raise SecretFormatError("kong_auth has both secret and private_key; give the one the Kong credential uses")
    if secret:
        signing_key = hmac_key(secret, alg=algorithm, field_name="secret", alg_field="algorithm")
    elif pem:
        if algorithm in HMAC_ALGS:
            raise SecretFormatError(f"kong_auth.algorithm {algorithm} needs secret, not private_key")
        if algorithm is not None and algorithm not in ASYMMETRIC_ALGS:
            raise SecretFormatError(f"kong_auth.algorithm {algorithm!r} is not supported")
        signing_key = import_private_key(pem, alg=algorithm, kid=None, field_name="private_key", alg_field="algorithm")
    else:
        raise SecretFormatError("kong_auth.secret (HS256/384/512) or kong_auth.private_key (RS*/ES*) is missing")

    limit = settings.max_token_ttl  # a longer ttl is refused by name, never cut silently
    ttl = f.optional_seconds("ttl", default=min(DEFAULT_TTL, limit), maximum=limit, maximum_from="max_token_ttl")
    assert ttl is not None
    maximum = f.optional_seconds("maximum_expiration", default=None, minimum=0, maximum=31536000)
    if maximum:  # Kong: 0 means no maximum
        if maximum <= MAXIMUM_EXPIRATION_MARGIN + 1:
            least = MAXIMUM_EXPIRATION_MARGIN + 1
            raise SecretFormatError(f"kong_auth.maximum_expiration must be more than {least:g}s")
        ttl = min(ttl, maximum - MAXIMUM_EXPIRATION_MARGIN)

    claims = f.json_object("claims")
    reserved = sorted({claim_name, "exp", "iat", "nbf", "jti"} & set(claims))
    if reserved:
        raise SecretFormatError(f"kong_auth.claims must not set {', '.join(reserved)} (the backend sets them)")
    return KongJwt(
        key=key,
        signing_key=signing_key,
        key_claim_name=claim_name,
        ttl=ttl,
        nbf=f.optional_bool("nbf"),
        claims=claims,
        secret=secret,
        private_key=pem,
        header_name=f.header_name(),
        version=version,
    )


class KongJwtFlow:
    name = NAME
    static = False

    def __init__(self, credential: KongJwt) -> None:
        self.credential = credential
        self._cache_key = credential.cache_key()
        self._token_key = local_token_key(self._cache_key, self.cache_secret())

    def __repr__(self) -> str:
        cred = self.credential
        return f"KongJwtFlow({cred.key_claim_name}={cred.key!r}, algorithm={cred.algorithm!r}, ttl={cred.ttl:g})"

    def cache_key(self) -> str:
        return self._cache_key

    def token_key(self) -> str:
        return self._token_key

    def cache_secret(self) -> bytes:
        """Sealing material for shared token caches: only a holder of the consumer's secret or key has it."""
        cred = self.credential
        return "\0".join((self._cache_key, cred.secret or "", cred.private_key or "")).encode()

    def claims(self, now: float) -> dict[str, Any]:
        cred = self.credential
        issued = int(now)
        claims: dict[str, Any] = dict(cred.claims)
        claims[cred.key_claim_name] = cred.key
        claims["iat"] = issued
        claims["exp"] = issued + int(cred.ttl)
        claims["jti"] = secrets.token_hex(16)  # a random id per token: the audit trail's token_id
        if cred.nbf:
            claims["nbf"] = issued
        return claims

    def mint(self, deadline: Deadline) -> Token:
        now = time.time()
        claims = self.claims(now)
        value = jws.encode(claims, self.credential.signing_key)
        summary = claims_summary(claims)
        summary.setdefault(self.credential.key_claim_name, self.credential.key)
        return Token(value=value, issued_at=now, expires_at=float(claims["exp"]), flow=self.name, claims=summary)


def build(credential: KongJwt, *, http: HttpTransport, settings: Settings, source: SecretSource) -> KongJwtFlow:
    return KongJwtFlow(credential)


FLOW = FlowKind(name=NAME, parse=parse, build=build, static=KongJwtFlow.static, secret_fields=("secret", "private_key"))
