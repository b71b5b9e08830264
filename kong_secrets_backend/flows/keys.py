"""Signing keys for JWTs the backend signs itself: parsed and imported once, when the secret is read.

authlib's own client-assertion path imports the PEM on every request (58-72 ms per mint measured here,
against 4-6 ms with the key imported once), so the key object lives on the credential, which the
resolver keeps for ``credential_cache_ttl``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from kong_secrets_backend.errors import SecretFormatError

HMAC_ALGS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
ASYMMETRIC_ALGS = (*RSA_ALGS, *EC_ALGS)
_EC_DEFAULT = {curve: alg for alg, curve in EC_ALGS.items()}
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    """A JWS signing key with its algorithm: an HMAC secret or an imported RSA/EC private key (never in repr)."""

    alg: str
    key: Any = field(repr=False, compare=False)
    kid: str | None = None
    # sha256 of the public key (asymmetric keys), for cache keys; "" for an HMAC secret, of which no digest is kept
    fingerprint: str = field(default="", repr=False)

    def sign(self, signing_input: bytes) -> bytes:
        """The raw JWS signature of signing_input (RFC 7518 §3: ECDSA as fixed-size r || s)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        alg = self.alg
        if alg in HMAC_ALGS:
            return hmac.new(self.key, signing_input, HMAC_ALGS[alg]).digest()
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        if alg.startswith("RS"):
            return self.key.sign(signing_input, padding.PKCS1v15(), digest)
        if alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            return self.key.sign(signing_input, pss, digest)
        der = self.key.sign(signing_input, ec.ECDSA(digest))
        r, s = decode_dss_signature(der)
        size = (self.key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def hmac_key(secret: str, *, alg: str | None, field_name: str, alg_field: str) -> SigningKey:
    """An HMAC key from a shared secret (client_secret_jwt, Kong jwt HS*)."""
    alg = alg or "HS256"
    if alg not in HMAC_ALGS:
        raise SecretFormatError(
            f"kong_auth.{alg_field} {alg!r} cannot be used with {field_name} (use one of {', '.join(HMAC_ALGS)})"
        )
    return SigningKey(alg=alg, key=secret.encode())


def private_key(pem: str, *, alg: str | None, kid: str | None, field_name: str, alg_field: str) -> SigningKey:
    """Import an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) once; alg defaults from the key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    text = pem.strip()
    if "\n" not in text and "\\n" in text:  # a PEM pasted into JSON with its newlines escaped twice
        text = text.replace("\\n", "\n")
    if "PRIVATE KEY-----" not in text:
        what = "a public key or certificate" if "PUBLIC KEY-----" in text or "CERTIFICATE-----" in text else "not PEM"
        raise SecretFormatError(f"kong_auth.{field_name} must be a PEM private key ({what} given)")
    if "ENCRYPTED" in text:
        raise SecretFormatError(f"kong_auth.{field_name} is encrypted; store the key unencrypted in the secret")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise SecretFormatError(f"kong_auth.{field_name} is not a readable PEM private key") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise SecretFormatError(
            f"kong_auth.{field_name} is not a supported private key ({type(exc).__name__})"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise SecretFormatError(f"kong_auth.{field_name} is a {key.key_size}-bit RSA key; at least 2048 bits")
        alg = alg or "RS256"
        if alg not in RSA_ALGS:
            raise SecretFormatError(
                f"kong_auth.{alg_field} {alg!r} does not fit an RSA key (use one of {', '.join(RSA_ALGS)})"
            )
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        curve = key.curve.name
        if curve not in _EC_DEFAULT:
            raise SecretFormatError(f"kong_auth.{field_name} uses curve {curve}; P-256, P-384 or P-521 are supported")
        alg = alg or _EC_DEFAULT[curve]
        if EC_ALGS.get(alg) != curve:
            raise SecretFormatError(
                f"kong_auth.{alg_field} {alg!r} does not fit a {curve} key (use {_EC_DEFAULT[curve]})"
            )
    else:
        raise SecretFormatError(
            f"kong_auth.{field_name} is a {type(key).__name__.removeprefix('_')}; RSA or EC (P-256/384/521) keys only"
        )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(alg=alg, key=key, kid=kid, fingerprint=hashlib.sha256(b"pk:" + public).hexdigest())


def pem_mask_values(pem: str) -> tuple[str, ...]:
    """The PEM as stored, and with its newlines escaped (how a repr or a JSON dump would show it)."""
    text = pem.strip()
    escaped = text.replace("\n", "\\n") if "\n" in text else text.replace("\\n", "\n")
    return tuple(dict.fromkeys((pem, text, escaped)))
