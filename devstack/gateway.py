"""A local stand-in for Kong Gateway: HAProxy in front of the echo upstream (`devstack/echo.py`).

`start_gateway(workdir, routes)` writes ``workdir/haproxy.cfg``, starts the echo upstream and ``haproxy -f cfg -db``
and returns a `Gateway`. Each route is a prefix of the request path plus an auth style, followed by Kong's
``rate-limiting`` plugin per consumer:

* `JwtRoute` behaves like Kong's ``openid-connect`` plugin in bearer-only mode: JWT access tokens checked locally
  against the issuer's public key (RS256 by default; ES256 etc. for issuers such as Vault's identity tokens), or
  against a key set by ``kid`` as Kong does with the issuer's JWKS (`jwks_key_files`), so that tokens signed
  before and after a key rotation both verify; `Gateway.reload` restarts HAProxy with a new key set;
* `KongJwtRoute` behaves like Kong's ``jwt`` plugin: the consumer's jwt credential is selected by the token's
  ``iss`` (``key_claim_name``); HS256/384/512 with the credential's secret, RS*/ES* with its public key; ``exp``
  checked, and ``maximum_expiration`` when set;
* `KeyAuthRoute` behaves like Kong's ``key-auth`` plugin: a map of API keys to consumers, read from ``apikey``.

Any route may also carry a `Redirect`, like Kong's ``redirect`` plugin: once the caller is authenticated (and not
rate-limited), the route answers ``status_code`` with ``Location: <location>`` (plus the incoming path and query
with ``keep_incoming_path``) instead of going upstream. The test suite points it at another origin to prove that
a credential never follows a redirect there (tests/attacks/test_redirects.py).

Responses of a `JwtRoute`, in Kong's style (JSON ``{"message": ...}`` bodies):

* no route matches the path -> 404 ``no Route matched with those values``;
* no bearer token -> 401 ``Unauthorized`` with ``WWW-Authenticate: Bearer``;
* malformed token, ``alg`` other than the route's (``none``, ``HS*`` ...), bad signature, ``exp`` missing or not in
  the future, ``nbf`` in the future, ``iss``/``aud`` not the configured ones, no usable client id -> 401
  ``Unauthorized`` with ``WWW-Authenticate: Bearer error="invalid_token"``;
* valid token whose ``scope`` claim lacks the required scope -> **403** ``Forbidden`` with
  ``WWW-Authenticate: Bearer error="insufficient_scope"`` (RFC 6750; Kong's openid-connect also answers 403 here);
* more than ``rate_limit`` requests by one consumer within ``rate_window`` seconds -> 429
  ``API rate limit exceeded`` with ``Retry-After: <rate_window>``;
* otherwise the request goes upstream with ``X-Consumer-Username: <client_id or sub>`` and
  ``X-Authenticated-Scope: <scope claim>``; client-sent copies of Kong's identity headers are always removed first.
  Allowed responses carry ``RateLimit-Limit`` and ``RateLimit-Remaining`` (plus ``X-RateLimit-*-Second/Minute/Hour``
  when the window is exactly one of those).

`KongJwtRoute` answers with the jwt plugin's messages: 401 ``Unauthorized`` (no token), 401 ``Bad token`` (does not
decode), 401 ``No mandatory 'iss' in claims``, 401 ``No credentials found for given 'iss'``, 403 ``Invalid
algorithm``, 401 ``Invalid signature``, 401 ``token expired`` (``exp`` missing or past), 401 ``token not valid yet``
(``nbf``, when in ``claims_to_verify``), 401 ``exceeds maximum allowed expiration``; upstream it sets
``X-Consumer-Username`` (the credential's consumer) and ``X-Credential-Identifier`` (the key).
`KeyAuthRoute` answers 401 ``No API key found in request`` or 401 ``Invalid authentication credentials`` with
``WWW-Authenticate: Key realm="kong"``, and sets the same two headers.

Differences from Kong worth knowing: the path is forwarded unchanged (Kong's ``strip_path`` defaults to true), the
longest matching prefix wins, ``aud`` may be a string or an array (only its first five entries are compared), the
rate counter is HAProxy's sliding ``http_req_rate`` rather than Kong's fixed windows, the jwt plugin's token is read
from the ``Authorization: Bearer`` header only (not the ``jwt`` query parameter or a cookie) and its key claim from
the payload only, and key-auth reads headers only (not the query string or body).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack import procs
from devstack.procs import Proc

ECHO_SCRIPT = Path(__file__).resolve().with_name("echo.py")

# Headers through which Kong tells the upstream who the caller is; a client must never be able to set them.
IDENTITY_HEADERS = (
    "X-Consumer-Username",
    "X-Consumer-ID",
    "X-Consumer-Custom-ID",
    "X-Consumer-Groups",
    "X-Credential-Identifier",
    "X-Anonymous-Consumer",
    "X-Authenticated-Scope",
    "X-Authenticated-Userid",
)

AUD_ARRAY_ENTRIES = 5  # how many entries of an `aud` array are compared with the audience
CONSUMER_MAX_LEN = 128  # stick-table key length

# RFC 6749 scope-token characters: %x21 / %x23-5B / %x5D-7E (no space, '"' or '\').
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_PREFIX = re.compile(r"/[A-Za-z0-9._~!$&()*+,;=:@%/-]*")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./-]+")
# Values that end up inside HAProxy sample expressions or map files: keep them to plain token characters.
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._~+/=:-]{1,256}")
_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A redirect location: an absolute http(s) URL of plain characters (no `%`: HAProxy would expand it as log-format).
_LOCATION = re.compile(r"https?://[A-Za-z0-9._~:@!$&()*+,;=/?-]+")
REDIRECT_CODES = (301, 302, 303, 307, 308)
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
HMAC_ALGS = ("HS256", "HS384", "HS512")
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


@dataclass(frozen=True)
class Redirect:
    """Like Kong's redirect plugin: answer `status_code` with `location` (an absolute URL), to which the incoming
    path and query are appended when `keep_incoming_path`. It runs after authentication and rate limiting."""

    location: str
    status_code: int = 301  # Kong's default
    keep_incoming_path: bool = False  # Kong's default


@dataclass(frozen=True)
class JwtRoute:
    """Like Kong's openid-connect plugin in bearer-only mode, plus rate-limiting per consumer.

    The token must be signed with `algorithm` (default RS256) by `public_key_pem` (a public key, certificate or
    private key in PEM, RSA for RS*/PS*, EC on the matching curve for ES*), unexpired, from `issuer`, for
    `audience`, and its space-separated ``scope`` claim must contain `required_scope` as a whole word (else 403,
    not 401). The consumer is the ``client_id`` claim, falling back to ``sub``.

    `public_key_pem` may instead map key ids to PEMs (a JWKS, see `jwks_key_files`): the token's ``kid`` header
    picks the key, as Kong's openid-connect does; a token without a known ``kid`` is refused.
    """

    path_prefix: str
    public_key_pem: Path | Mapping[str, Path]
    issuer: str
    audience: str
    required_scope: str
    rate_limit: int = 100
    rate_window: int = 10
    algorithm: str = "RS256"
    redirect: Redirect | None = None


@dataclass(frozen=True)
class KongJwtCredential:
    """One jwt credential of a Kong consumer: `key` (matched against the key claim) and how it signs."""

    key: str
    consumer: str
    algorithm: str = "HS256"
    secret: str | None = None  # HS*
    public_key_pem: Path | None = None  # RS*/ES*/PS* (Kong's ``rsa_public_key``)


@dataclass(frozen=True)
class KongJwtRoute:
    """Like Kong's jwt plugin (``key_claim_name``, ``claims_to_verify``, ``maximum_expiration``), plus rate-limiting."""

    path_prefix: str
    credentials: tuple[KongJwtCredential, ...]
    key_claim_name: str = "iss"
    claims_to_verify: tuple[str, ...] = ("exp",)
    maximum_expiration: int = 0  # seconds; 0 = no maximum (Kong's default)
    rate_limit: int = 100
    rate_window: int = 10
    redirect: Redirect | None = None


@dataclass(frozen=True)
class KeyAuthRoute:
    """Like Kong's key-auth plugin: `keys` maps each API key to its consumer; read from the `key_names` headers."""

    path_prefix: str
    keys: Mapping[str, str]
    key_names: tuple[str, ...] = ("apikey",)
    hide_credentials: bool = False
    rate_limit: int = 100
    rate_window: int = 10
    redirect: Redirect | None = None


# Every route type has `path_prefix`, `rate_limit`, `rate_window` and `redirect`.
Route: TypeAlias = JwtRoute | KongJwtRoute | KeyAuthRoute


@dataclass
class Gateway:
    """A running gateway: HAProxy at `url`, the echo upstream behind it logging to `upstream_log`."""

    url: str
    upstream_log: Path
    proc: Proc
    upstream: Proc
    config_path: Path | None = None
    upstream_port: int = 0

    def reload(self, routes: Sequence[Route]) -> None:
        """Rewrite haproxy.cfg for `routes` and restart HAProxy on the same port (the upstream keeps running), as
        Kong picks up a changed configuration or an issuer's new JWKS: e.g. after a signing key rotation."""
        if self.config_path is None:
            raise RuntimeError("only a gateway started by start_gateway can be reloaded")
        port = int(self.url.rsplit(":", 1)[1])
        self.config_path.write_text(render_config(port, self.upstream_port, routes, self.config_path.parent / "keys"))
        self.proc.stop()
        self.proc = _start_haproxy(self.config_path, self.url)

    def received(self) -> list[dict[str, Any]]:
        """The requests the echo upstream saw, oldest first."""
        try:
            text = self.upstream_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        """Stop HAProxy and the upstream (by PID, process group)."""
        try:
            self.proc.stop()
        finally:
            self.upstream.stop()


# --------------------------------------------------------------------------------------------------------------------
# HAProxy config rendering
# --------------------------------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    """Single-quote a value for haproxy.cfg (no escapes exist inside single quotes, so refuse what would break)."""
    if "'" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"value not usable in haproxy.cfg: {value!r}")
    return f"'{value}'"


def _dq(value: str) -> str:
    """Double-quote a value for haproxy.cfg (backslash escapes; `$` would expand environment variables)."""
    if "$" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"value not usable in haproxy.cfg: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_body(message: str) -> str:
    body = json.dumps({"message": message}, separators=(",", ":"))
    return _dq(body) if "'" in body else _q(body)


def _return(status: int, message: str, headers: Sequence[tuple[str, str]], cond: str) -> str:
    hdrs = "".join(f" hdr {name} {_q(value)}" for name, value in headers)
    return (
        f"http-request return status {status} content-type application/json string {_json_body(message)}{hdrs}"
        f" if {cond}"
    )


def _unauthorized(cond: str, *, invalid: bool = True) -> str:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return _return(401, "Unauthorized", [("WWW-Authenticate", challenge)], cond)


def _write_public_key(source: Path, dest: Path, algorithm: str = "RS256") -> None:
    """Normalise a public key / certificate / private key PEM to a SubjectPublicKeyInfo PEM file for HAProxy."""
    data = source.read_bytes()
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            key = serialization.load_pem_private_key(data, password=None).public_key()
    if algorithm.startswith(("RS", "PS")) and not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{source}: {algorithm} needs an RSA key, got {type(key).__name__}")
    if algorithm.startswith("ES") and not (
        isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[algorithm]
    ):
        raise TypeError(f"{source}: {algorithm} needs an EC {_EC_CURVES[algorithm]} key")
    if algorithm not in ASYMMETRIC_ALGS:
        raise ValueError(f"unsupported algorithm for a public key: {algorithm!r}")
    dest.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # type: ignore[attr-defined]


def _b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def jwk_to_pem(jwk: Mapping[str, Any]) -> bytes:
    """A public JWK (RSA, or EC P-256/384/521) as a SubjectPublicKeyInfo PEM, e.g. from Vault's identity JWKS."""
    if jwk.get("kty") == "RSA":
        key: Any = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"])).public_key()
    elif jwk.get("kty") == "EC":
        curve = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}[jwk["crv"]]
        key = ec.EllipticCurvePublicNumbers(_b64url_int(jwk["x"]), _b64url_int(jwk["y"]), curve()).public_key()
    else:
        raise ValueError(f"unsupported JWK kty {jwk.get('kty')!r}")
    return bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _key_file(source: Path, keys_dir: Path, name: str, algorithm: str) -> Path:
    path = keys_dir / f"{name}.pem"
    _write_public_key(source, path, algorithm)
    if not _SAFE_PATH.fullmatch(str(path)):
        raise ValueError(f"key path not usable inside an haproxy sample expression: {path}")
    return path


def jwks_key_files(jwks: Mapping[str, Any], dest_dir: Path, *, algorithm: str) -> dict[str, Path]:
    """The keys of a JWKS usable with `algorithm`, each written as a PEM file: ``{kid: path}`` for a `JwtRoute`."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    family = "RSA" if algorithm.startswith(("RS", "PS")) else "EC"
    files: dict[str, Path] = {}
    for i, jwk in enumerate(jwks.get("keys", [])):
        kid = jwk.get("kid")
        if not isinstance(kid, str) or jwk.get("kty") != family or jwk.get("alg", algorithm) != algorithm:
            continue
        if family == "EC" and jwk.get("crv") != {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[algorithm]:
            continue
        path = dest_dir / f"jwk-{i}.pem"
        path.write_bytes(jwk_to_pem(jwk))
        files[kid] = path
    return files


def _jwt_keys(route: JwtRoute, rid: str, keys_dir: Path) -> Path | dict[str, Path]:
    if not isinstance(route.public_key_pem, Mapping):
        return _key_file(route.public_key_pem, keys_dir, rid, route.algorithm)
    if not route.public_key_pem:
        raise ValueError("a JwtRoute needs at least one key")
    keys = {}
    for i, (kid, source) in enumerate(route.public_key_pem.items()):
        if not isinstance(kid, str) or not _SAFE_TOKEN.fullmatch(kid):
            raise ValueError(f"key id must be a plain token: {kid!r}")
        keys[kid] = _key_file(source, keys_dir, f"{rid}-k{i}", route.algorithm)
    return keys


def _signature_rules(r: str, alg: str, keys: Path | dict[str, Path]) -> list[str]:
    """The signature, checked with the route's algorithm (never the one the token names) and one key, or the key
    the token's ``kid`` header names."""
    if isinstance(keys, Path):
        return [_unauthorized(f"{r} !{{ var(txn.bearer),jwt_verify({alg},{keys}) -m int 1 }}")]
    rules = [
        f"http-request set-var(txn.jwt_kid) var(txn.bearer),jwt_header_query('$.kid') if {r}",
        f"http-request unset-var(txn.sig_ok) if {r}",
    ]
    rules += [
        f"http-request set-var(txn.sig_ok) bool(1) if {r} {{ var(txn.jwt_kid) -m str {_q(kid)} }}"
        f" {{ var(txn.bearer),jwt_verify({alg},{path}) -m int 1 }}"
        for kid, path in keys.items()
    ]
    rules.append(_unauthorized(f"{r} !{{ var(txn.sig_ok) -m bool }}"))
    return rules


def _jwt_rules(route: JwtRoute, rid: str, keys: Path | dict[str, Path]) -> list[str]:
    """Rules for one JwtRoute; on success txn.consumer (and txn.scope) are set, else a canned response is returned.

    Every rule is guarded by the route's ACL `rid`. Techniques: `http_auth_bearer` for the token,
    `jwt_header_query('$.alg')` compared with the route's algorithm, `jwt_verify(<alg>,<pem file>)` must be 1 (with
    a key set: for the file of the token's ``kid``), `jwt_payload_query('$.exp','int')` minus `date()` must be > 0,
    string equality for iss/aud, a PCRE whole-word match on the scope claim.
    """
    if not _SCOPE_TOKEN.fullmatch(route.required_scope):
        raise ValueError(f"required_scope must be one RFC 6749 scope token: {route.required_scope!r}")
    r, alg = rid, route.algorithm
    challenge = 'Bearer error="insufficient_scope"'
    if "%" not in route.required_scope:  # header values are log-format strings; keep it simple
        challenge += f', scope="{route.required_scope}"'
    scope_re = f"(^| ){re.escape(route.required_scope)}( |$)"
    rules = [
        f"http-request set-var(txn.bearer) http_auth_bearer if {r}",
        _unauthorized(f"{r} !{{ var(txn.bearer) -m len gt 0 }}", invalid=False),
        # Header: must decode and name the route's algorithm (refuses alg=none and HS256-with-the-public-key).
        f"http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg') if {r}",
        _unauthorized(f"{r} !{{ var(txn.jwt_alg) -m str {alg} }}"),
        # Signature, checked with the fixed algorithm (never the one the token names).
        *_signature_rules(r, alg, keys),
        # exp > now (required); nbf <= now (if present).
        f"http-request set-var(txn.jwt_exp) var(txn.bearer),jwt_payload_query('$.exp','int') if {r}",
        f"http-request set-var(txn.jwt_ttl) var(txn.jwt_exp),sub(txn.now) if {r} {{ var(txn.jwt_exp) -m found }}",
        _unauthorized(f"{r} !{{ var(txn.jwt_ttl) -m int gt 0 }}"),
        f"http-request set-var(txn.jwt_nbf) var(txn.bearer),jwt_payload_query('$.nbf','int') if {r}",
        f"http-request set-var(txn.jwt_wait) var(txn.jwt_nbf),sub(txn.now) if {r} {{ var(txn.jwt_nbf) -m found }}",
        _unauthorized(f"{r} {{ var(txn.jwt_wait) -m int gt 0 }}"),
        # iss
        f"http-request set-var(txn.jwt_iss) var(txn.bearer),jwt_payload_query('$.iss') if {r}",
        _unauthorized(f"{r} !{{ var(txn.jwt_iss) -m str {_q(route.issuer)} }}"),
        # aud: a string, or one of the first entries of an array
        f"http-request unset-var(txn.aud_ok) if {r}",
    ]
    for path in ["$.aud", *(f"$.aud[{i}]" for i in range(AUD_ARRAY_ENTRIES))]:
        rules += [
            f"http-request set-var(txn.jwt_aud) var(txn.bearer),jwt_payload_query('{path}') if {r}",
            f"http-request set-var(txn.aud_ok) bool(1) if {r} {{ var(txn.jwt_aud) -m str {_q(route.audience)} }}",
            f"http-request unset-var(txn.jwt_aud) if {r}",
        ]
    rules += [
        _unauthorized(f"{r} !{{ var(txn.aud_ok) -m bool }}"),
        # consumer = client_id, else sub; printable ASCII only (it becomes a header and a stick-table key)
        f"http-request set-var(txn.consumer) var(txn.bearer),jwt_payload_query('$.client_id') if {r}",
        (
            f"http-request set-var(txn.consumer) var(txn.bearer),jwt_payload_query('$.sub')"
            f" if {r} !{{ var(txn.consumer) -m len gt 0 }}"
        ),
        _unauthorized(f"{r} !{{ var(txn.consumer) -m reg '^[ -~]{{1,{CONSUMER_MAX_LEN}}}$' }}"),
        # scope: whole word, else 403
        f"http-request set-var(txn.scope) var(txn.bearer),jwt_payload_query('$.scope') if {r}",
        _unauthorized(f"{r} {{ var(txn.scope) -m reg '[^ -~]' }}"),
        _return(
            403,
            "Forbidden",
            [("WWW-Authenticate", challenge)],
            f"{r} !{{ var(txn.scope) -m reg {_q(scope_re)} }}",
        ),
    ]
    return rules


def _plain(status: int, message: str, cond: str, headers: Sequence[tuple[str, str]] = ()) -> str:
    return _return(status, message, headers, cond)


def _exp_rules(r: str, prefix: str, message: str, *, required: bool = True) -> list[str]:
    """exp must be present and in the future (txn.<prefix>_ttl = exp - now is left set for later checks)."""
    rules = [
        f"http-request set-var(txn.{prefix}_exp) var(txn.bearer),jwt_payload_query('$.exp','int') if {r}",
        (
            f"http-request set-var(txn.{prefix}_ttl) var(txn.{prefix}_exp),sub(txn.now)"
            f" if {r} {{ var(txn.{prefix}_exp) -m found }}"
        ),
    ]
    if required:
        rules.append(_plain(401, message, f"{r} !{{ var(txn.{prefix}_ttl) -m int gt 0 }}"))
    return rules


def _kong_jwt_rules(route: KongJwtRoute, rid: str, keys_dir: Path) -> list[str]:
    """Kong's jwt plugin: credential by key claim, its algorithm and key, exp (and nbf), maximum_expiration."""
    if not _CLAIM_NAME.fullmatch(route.key_claim_name):
        raise ValueError(f"key_claim_name must be a plain claim name: {route.key_claim_name!r}")
    if not route.credentials:
        raise ValueError("a KongJwtRoute needs at least one credential")
    unknown = set(route.claims_to_verify) - {"exp", "nbf"}
    if unknown:
        raise ValueError(f"claims_to_verify may hold exp and nbf only, not {sorted(unknown)}")
    r, claim = rid, route.key_claim_name
    rules = [
        f"http-request set-var(txn.bearer) http_auth_bearer if {r}",
        _plain(401, "Unauthorized", f"{r} !{{ var(txn.bearer) -m len gt 0 }}"),
        f"http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg') if {r}",
        _plain(401, "Bad token", f"{r} !{{ var(txn.jwt_alg) -m len gt 0 }}"),
        f"http-request set-var(txn.credential) var(txn.bearer),jwt_payload_query('$.{claim}') if {r}",
        _plain(401, f"No mandatory '{claim}' in claims", f"{r} !{{ var(txn.credential) -m len gt 0 }}"),
        f"http-request unset-var(txn.kj_cred) if {r}",
    ]
    seen: set[str] = set()
    for i, cred in enumerate(route.credentials):
        if not _SAFE_TOKEN.fullmatch(cred.key) or not _SAFE_TOKEN.fullmatch(cred.consumer):
            raise ValueError(f"credential key and consumer must be plain tokens: {cred.key!r} / {cred.consumer!r}")
        if cred.key in seen:
            raise ValueError(f"duplicate jwt credential key {cred.key!r}")
        seen.add(cred.key)
        rules.append(f"http-request set-var(txn.kj_cred) str(c{i}) if {r} {{ var(txn.credential) -m str {cred.key} }}")
    rules.append(_plain(401, f"No credentials found for given '{claim}'", f"{r} !{{ var(txn.kj_cred) -m found }}"))
    for i, cred in enumerate(route.credentials):
        this = f"{r} {{ var(txn.kj_cred) -m str c{i} }}"
        if cred.algorithm in HMAC_ALGS:
            if cred.secret is None or not _SAFE_TOKEN.fullmatch(cred.secret):
                raise ValueError(f"credential {cred.key!r}: {cred.algorithm} needs a secret of plain token characters")
            verify_key = cred.secret
        elif cred.algorithm in ASYMMETRIC_ALGS:
            if cred.public_key_pem is None:
                raise ValueError(f"credential {cred.key!r}: {cred.algorithm} needs public_key_pem")
            verify_key = str(_key_file(cred.public_key_pem, keys_dir, f"{rid}-c{i}", cred.algorithm))
        else:
            raise ValueError(f"credential {cred.key!r}: unsupported algorithm {cred.algorithm!r}")
        rules += [
            _plain(403, "Invalid algorithm", f"{this} !{{ var(txn.jwt_alg) -m str {cred.algorithm} }}"),
            _plain(
                401,
                "Invalid signature",
                f"{this} !{{ var(txn.bearer),jwt_verify({cred.algorithm},{verify_key}) -m int 1 }}",
            ),
            f"http-request set-var(txn.consumer) str({cred.consumer}) if {this}",
        ]
    needs_exp = "exp" in route.claims_to_verify or route.maximum_expiration > 0
    if needs_exp:
        rules += _exp_rules(r, "kj", "token expired")
    if route.maximum_expiration > 0:
        rules.append(
            _plain(
                401,
                "exceeds maximum allowed expiration",
                f"{r} {{ var(txn.kj_ttl) -m int gt {int(route.maximum_expiration)} }}",
            )
        )
    if "nbf" in route.claims_to_verify:
        rules += [
            f"http-request set-var(txn.kj_nbf) var(txn.bearer),jwt_payload_query('$.nbf','int') if {r}",
            f"http-request set-var(txn.kj_wait) var(txn.kj_nbf),sub(txn.now) if {r} {{ var(txn.kj_nbf) -m found }}",
            _plain(401, "token not valid yet", f"{r} !{{ var(txn.kj_wait) -m found }}"),
            _plain(401, "token not valid yet", f"{r} {{ var(txn.kj_wait) -m int gt 0 }}"),
        ]
    return rules


def _key_auth_rules(route: KeyAuthRoute, rid: str, keys_dir: Path) -> list[str]:
    """Kong's key-auth plugin: the first key_names header that is present, looked up in a map file of keys."""
    if not route.keys:
        raise ValueError("a KeyAuthRoute needs at least one key")
    for name in route.key_names:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
            raise ValueError(f"key name must be a plain header name: {name!r}")
    lines = []
    for key, consumer in route.keys.items():
        if not _SAFE_TOKEN.fullmatch(key) or not _SAFE_TOKEN.fullmatch(consumer):
            raise ValueError("API keys and consumers must be plain tokens")
        lines.append(f"{key} {consumer}\n")
    map_path = keys_dir / f"{rid}.map"
    map_path.write_text("".join(lines))
    map_path.chmod(0o600)
    if not _SAFE_PATH.fullmatch(str(map_path)):
        raise ValueError(f"map path not usable inside an haproxy sample expression: {map_path}")
    r = rid
    challenge = [("WWW-Authenticate", 'Key realm="kong"')]
    rules = [f"http-request unset-var(txn.ka_key) if {r}"]
    rules += [
        f"http-request set-var(txn.ka_key) req.hdr({name}) if {r} !{{ var(txn.ka_key) -m found }}"
        for name in route.key_names
    ]
    rules += [
        _plain(401, "No API key found in request", f"{r} !{{ var(txn.ka_key) -m len gt 0 }}", challenge),
        f"http-request set-var(txn.consumer) var(txn.ka_key),map({map_path}) if {r}",
        _plain(401, "Invalid authentication credentials", f"{r} !{{ var(txn.consumer) -m found }}", challenge),
        f"http-request set-var(txn.credential) var(txn.ka_key),sha1,hex if {r}",
    ]
    if route.hide_credentials:
        rules += [f"http-request del-header {name} if {r}" for name in route.key_names]
    return rules


def _auth_rules(route: Route, rid: str, keys_dir: Path) -> list[str]:
    """Dispatch on the route's auth style. Contract: reject with a canned response, or leave txn.consumer set."""
    if isinstance(route, JwtRoute):
        return _jwt_rules(route, rid, _jwt_keys(route, rid, keys_dir))
    if isinstance(route, KongJwtRoute):
        return _kong_jwt_rules(route, rid, keys_dir)
    if isinstance(route, KeyAuthRoute):
        return _key_auth_rules(route, rid, keys_dir)
    raise TypeError(f"unsupported route type: {type(route).__name__}")


def _window_name(seconds: int) -> str | None:
    return {1: "Second", 60: "Minute", 3600: "Hour", 86400: "Day"}.get(seconds)


def _rate_limit_rules(route: Route, rid: str) -> list[str]:
    """Kong rate-limiting per consumer: one stick table per route, keyed by txn.consumer."""
    r, limit, window = rid, route.rate_limit, route.rate_window
    limit_headers = [
        ("Retry-After", str(window)),
        ("RateLimit-Limit", str(limit)),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", str(window)),
    ]
    return [
        f"http-request track-sc0 var(txn.consumer) table st_{rid} if {r}",
        f"http-request set-var(txn.rl_count) sc_http_req_rate(0) if {r}",
        _return(429, "API rate limit exceeded", limit_headers, f"{r} {{ var(txn.rl_count) -m int gt {limit} }}"),
        f"http-request set-var(txn.rl_limit) int({limit}) if {r}",
        f"http-request set-var(txn.rl_window) int({window}) if {r}",
        f"http-request set-var(txn.rl_remaining) int({limit}),sub(txn.rl_count) if {r}",
    ]


def _redirect_rules(route: Route, rid: str) -> list[str]:
    """Kong's redirect plugin: after the auth and rate-limiting rules, answer with a redirect instead of proxying."""
    redirect = route.redirect
    if redirect is None:
        return []
    if not _LOCATION.fullmatch(redirect.location):
        raise ValueError(f"redirect location must be an absolute http(s) URL of plain characters: {redirect.location}")
    if redirect.status_code not in REDIRECT_CODES:
        raise ValueError(f"redirect status_code must be one of {REDIRECT_CODES}")
    if redirect.keep_incoming_path:  # HAProxy's `prefix` appends the request's path and query
        return [f"http-request redirect prefix {redirect.location.rstrip('/')} code {redirect.status_code} if {rid}"]
    return [f"http-request redirect location {redirect.location} code {redirect.status_code} if {rid}"]


def render_config(port: int, upstream_port: int, routes: Sequence[Route], keys_dir: Path) -> str:
    """The whole haproxy.cfg for these routes (writes each route's PEM into keys_dir)."""
    seen: set[str] = set()
    for route in routes:
        if not _PREFIX.fullmatch(route.path_prefix):
            raise ValueError(f"path_prefix must start with / and contain no spaces or quotes: {route.path_prefix!r}")
        if route.path_prefix in seen:
            raise ValueError(f"duplicate path_prefix {route.path_prefix!r}")
        if route.rate_limit < 1 or route.rate_window < 1:
            raise ValueError("rate_limit and rate_window must be >= 1")
        seen.add(route.path_prefix)
    keys_dir.mkdir(parents=True, exist_ok=True)

    # rN numbers follow the caller's order; matching tries the longest prefix first (like Kong).
    ids = {id(route): f"r{i}" for i, route in enumerate(routes)}
    by_length = sorted(routes, key=lambda rt: len(rt.path_prefix), reverse=True)

    fe: list[str] = [
        f"bind 127.0.0.1:{port}",
        "option forwardfor",
        "acl route_set var(txn.route) -m found",
        "acl rl_set var(txn.rl_limit) -m found",
        *(f"acl {ids[id(rt)]} var(txn.route) -m str {ids[id(rt)]}" for rt in routes),
        *(f"http-request del-header {name}" for name in IDENTITY_HEADERS),
        "http-request set-var(txn.now) date()",
        *(
            f"http-request set-var(txn.route) str({ids[id(rt)]}) if !route_set {{ path_beg {rt.path_prefix} }}"
            for rt in by_length
        ),
        _return(404, "no Route matched with those values", [], "!route_set"),
    ]
    backends: list[str] = []
    for rt in routes:
        rid = ids[id(rt)]
        fe += [f"# route {rid}: {type(rt).__name__} {rt.path_prefix}"]
        fe += _auth_rules(rt, rid, keys_dir)
        fe += _rate_limit_rules(rt, rid)
        fe += _redirect_rules(rt, rid)
        backends += [
            f"backend st_{rid}",
            (
                f"    stick-table type string len {CONSUMER_MAX_LEN} size 100k expire {2 * rt.rate_window}s"
                f" store http_req_rate({rt.rate_window}s)"
            ),
            "",
        ]
    fe += [
        "http-request set-header X-Consumer-Username %[var(txn.consumer)] if route_set",
        "http-request set-header X-Authenticated-Scope %[var(txn.scope)] if route_set { var(txn.scope) -m found }",
        (
            "http-request set-header X-Credential-Identifier %[var(txn.credential)]"
            " if route_set { var(txn.credential) -m found }"
        ),
        "http-response set-header RateLimit-Limit %[var(txn.rl_limit)] if rl_set",
        "http-response set-header RateLimit-Remaining %[var(txn.rl_remaining)] if rl_set",
    ]
    for seconds in sorted({rt.rate_window for rt in routes}):
        name = _window_name(seconds)
        if name:
            cond = f"rl_set {{ var(txn.rl_window) -m int eq {seconds} }}"
            fe += [
                f"http-response set-header X-RateLimit-Limit-{name} %[var(txn.rl_limit)] if {cond}",
                f"http-response set-header X-RateLimit-Remaining-{name} %[var(txn.rl_remaining)] if {cond}",
            ]
    fe += ["default_backend be_upstream"]

    lines = [
        "# generated by devstack/gateway.py",
        "global",
        "    log stdout format raw local0",
        "    nbthread 2",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    timeout connect 3s",
        "    timeout client 10s",
        "    timeout server 10s",
        "    timeout http-request 5s",
        "",
        "frontend gateway",
        *(f"    {line}" for line in fe),
        "",
        "backend be_upstream",
        f"    server echo 127.0.0.1:{upstream_port}",
        "",
        *backends,
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------------


def _port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_gateway(workdir: Path, routes: Sequence[Route]) -> Gateway:
    """Write workdir/haproxy.cfg, start the echo upstream and HAProxy; both are stopped again if startup fails."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port, upstream_port = procs.free_port(), procs.free_port()
    while upstream_port == port:
        upstream_port = procs.free_port()
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(render_config(port, upstream_port, routes, workdir / "keys"))
    upstream_log = workdir / "upstream.jsonl"
    upstream_log.write_text("")
    logs = workdir / "logs"

    upstream = procs.start(
        "echo",
        [sys.executable, str(ECHO_SCRIPT), "--port", str(upstream_port), "--log", str(upstream_log)],
        log_dir=logs,
        ready=lambda: _port_answers(upstream_port),
        timeout=15,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc = _start_haproxy(cfg, url)
    except BaseException:
        upstream.stop()
        raise
    return Gateway(
        url=url, upstream_log=upstream_log, proc=proc, upstream=upstream, config_path=cfg, upstream_port=upstream_port
    )


@dataclass
class Listener:
    """A bare echo server at `url` (another origin than the gateway's): it records every request, headers included,
    and answers 200. A `Redirect` pointed at it shows what a client re-sends when it follows a redirect."""

    url: str
    log: Path
    proc: Proc

    def received(self) -> list[dict[str, Any]]:
        """The requests it saw, oldest first (header names lower-cased)."""
        try:
            text = self.log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        self.proc.stop()


def start_listener(workdir: Path, name: str = "listener", host: str = "127.0.0.1") -> Listener:
    """Start devstack/echo.py on a free port of `host` (an IPv4 address), logging to ``workdir/<name>.jsonl``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    log = workdir / f"{name}.jsonl"
    log.write_text("")
    proc = procs.start(
        name,
        [sys.executable, str(ECHO_SCRIPT), "--port", str(port), "--log", str(log), "--host", host],
        log_dir=workdir / "logs",
        ready=lambda: _port_answers(port, host),
        timeout=15,
    )
    return Listener(url=f"http://{host}:{port}", log=log, proc=proc)


def _start_haproxy(cfg: Path, url: str) -> Proc:
    return procs.start(
        "haproxy",
        ["haproxy", "-f", str(cfg), "-db"],
        log_dir=cfg.parent / "logs",
        ready=lambda: procs.http_ok(url + "/"),
        cwd=cfg.parent,
        timeout=15,
    )
