"""Compact JWS (RFC 7515) for the JWTs the backend signs or checks itself, on ``cryptography`` only.

Signing: client assertions (RFC 7523) and Kong jwt-plugin tokens, with a key imported once
(:class:`~kong_secrets_backend.flows.keys.SigningKey`). Verification: Vault identity tokens
against Vault's JWKS (RS*/PS*/ES* public JWKs).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kong_secrets_backend.flows.keys import SigningKey

_SIZES = {"P-256": 32, "P-384": 48, "P-521": 66}
_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class JwsError(ValueError):
    """A token or key that cannot be verified; the message never contains the token."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def encode(claims: Mapping[str, Any], key: SigningKey, *, extra_header: Mapping[str, Any] | None = None) -> str:
    """A compact JWS of claims signed with key; the header carries alg, typ JWT and the key's kid if any."""
    header: dict[str, Any] = {"alg": key.alg, "typ": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    header.update(extra_header or {})
    signing_input = f"{_json_part(header)}.{_json_part(claims)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


def verify(
    token: str, jwks: Mapping[str, Any], *, algorithms: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) once the signature checks out with the JWKS key named by the token's kid."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise JwsError("token does not decode") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwsError("token header or payload is not a JSON object")
    alg = header.get("alg")
    if alg not in algorithms:
        raise JwsError(f"token alg {str(alg)[:20]!r} is not one of {', '.join(algorithms)}")
    jwk = _find_key(jwks, header.get("kid"))
    if jwk is None:
        raise JwsError(f"no key with kid {str(header.get('kid'))[:80]!r} in the JWKS")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not _check(alg, jwk, signing_input, signature):
        raise JwsError("signature does not verify")
    return header, payload


def _find_key(jwks: Mapping[str, Any], kid: Any) -> Mapping[str, Any] | None:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        return None
    candidates = [k for k in keys if isinstance(k, Mapping) and k.get("use", "sig") == "sig"]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    return candidates[0] if len(candidates) == 1 else None


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Any:
    """An RSA or EC public key object from a public JWK (RFC 7518 §6)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def integer(name: str) -> int:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise JwsError(f"JWK has no {name}")
        return int.from_bytes(b64url_decode(value), "big")

    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            return rsa.RSAPublicNumbers(integer("e"), integer("n")).public_key()
        if kty == "EC":
            curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
            curve = curves.get(str(jwk.get("crv")))
            if curve is None:
                raise JwsError(f"JWK curve {str(jwk.get('crv'))[:20]!r} is not supported")
            return ec.EllipticCurvePublicNumbers(integer("x"), integer("y"), curve).public_key()
    except JwsError:
        raise
    except (ValueError, binascii.Error) as exc:  # a point off the curve, a bad modulus, bad base64
        raise JwsError(f"JWK with kid {str(jwk.get('kid'))[:80]!r} is not a valid {kty} key") from exc
    raise JwsError(f"JWK kty {str(kty)[:20]!r} is not supported")


def _check(alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key = public_key_from_jwk(jwk)
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    try:
        if alg.startswith(("RS", "PS")):
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            pad = (
                padding.PKCS1v15()
                if alg.startswith("RS")
                else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            )
            key.verify(signature, signing_input, pad, digest)
            return True
        if alg.startswith("ES"):
            size = _SIZES[_ALG_CURVE[alg]]
            if not isinstance(key, ec.EllipticCurvePublicKey) or jwk.get("crv") != _ALG_CURVE[alg]:
                return False
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
            return True
    except InvalidSignature:
        return False
    return False
