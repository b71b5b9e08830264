"""A local stand-in for Kong Gateway: HAProxy in front of the echo upstream (`devstack/echo.py`).

`start_gateway(workdir, routes)` writes ``workdir/haproxy.cfg``, starts the echo upstream and ``haproxy -f cfg -db``
and returns a `Gateway`. Each route is a prefix of the request path plus an auth style; the only style implemented
now is `JwtRoute`, which behaves like Kong's ``openid-connect`` plugin in bearer-only mode (JWT access tokens checked
locally against the IdP's RSA public key) followed by Kong's ``rate-limiting`` plugin per consumer.

Responses, in Kong's style (JSON ``{"message": ...}`` bodies):

* no route matches the path -> 404 ``no Route matched with those values``;
* no bearer token -> 401 ``Unauthorized`` with ``WWW-Authenticate: Bearer``;
* malformed token, ``alg`` other than RS256 (``none``, ``HS*`` ...), bad signature, ``exp`` missing or not in the
  future, ``nbf`` in the future, ``iss``/``aud`` not the configured ones, no usable client id -> 401 ``Unauthorized``
  with ``WWW-Authenticate: Bearer error="invalid_token"``;
* valid token whose ``scope`` claim lacks the required scope -> **403** ``Forbidden`` with
  ``WWW-Authenticate: Bearer error="insufficient_scope"`` (RFC 6750; Kong's openid-connect also answers 403 here);
* more than ``rate_limit`` requests by one consumer within ``rate_window`` seconds -> 429
  ``API rate limit exceeded`` with ``Retry-After: <rate_window>``;
* otherwise the request goes upstream with ``X-Consumer-Username: <client_id or sub>`` and
  ``X-Authenticated-Scope: <scope claim>``; client-sent copies of Kong's identity headers are always removed first.
  Allowed responses carry ``RateLimit-Limit`` and ``RateLimit-Remaining`` (plus ``X-RateLimit-*-Second/Minute/Hour``
  when the window is exactly one of those).

Differences from Kong worth knowing: the path is forwarded unchanged (Kong's ``strip_path`` defaults to true), the
longest matching prefix wins, ``aud`` may be a string or an array (only its first five entries are compared), and the
rate counter is HAProxy's sliding ``http_req_rate`` rather than Kong's fixed windows.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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


@dataclass(frozen=True)
class JwtRoute:
    """Like Kong's openid-connect plugin in bearer-only mode, plus rate-limiting per consumer.

    The token must be RS256-signed by `public_key_pem` (an RSA public key or certificate in PEM), unexpired, from
    `issuer`, for `audience`, and its space-separated ``scope`` claim must contain `required_scope` as a whole word
    (else 403, not 401). The consumer is the ``client_id`` claim, falling back to ``sub``.
    """

    path_prefix: str
    public_key_pem: Path
    issuer: str
    audience: str
    required_scope: str
    rate_limit: int = 100
    rate_window: int = 10


# Every route type has `path_prefix`, `rate_limit` and `rate_window`. Planned additions: Kong's jwt plugin
# (HS256 secret or RS256 consumer key, selected by `iss` = key) and key-auth (a map of API key -> consumer).
Route: TypeAlias = JwtRoute


@dataclass
class Gateway:
    """A running gateway: HAProxy at `url`, the echo upstream behind it logging to `upstream_log`."""

    url: str
    upstream_log: Path
    proc: Proc
    upstream: Proc

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


def _json_body(message: str) -> str:
    return _q(json.dumps({"message": message}, separators=(",", ":")))


def _return(status: int, message: str, headers: Sequence[tuple[str, str]], cond: str) -> str:
    hdrs = "".join(f" hdr {name} {_q(value)}" for name, value in headers)
    return (
        f"http-request return status {status} content-type application/json string {_json_body(message)}{hdrs}"
        f" if {cond}"
    )


def _unauthorized(cond: str, *, invalid: bool = True) -> str:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return _return(401, "Unauthorized", [("WWW-Authenticate", challenge)], cond)


def _write_public_key(source: Path, dest: Path) -> None:
    """Normalise an RSA public key / certificate / private key PEM to a SubjectPublicKeyInfo PEM file for HAProxy."""
    data = source.read_bytes()
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            key = serialization.load_pem_private_key(data, password=None).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{source}: RS256 needs an RSA key, got {type(key).__name__}")
    dest.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _jwt_rules(route: JwtRoute, rid: str, key_path: Path) -> list[str]:
    """Rules for one JwtRoute; on success txn.consumer (and txn.scope) are set, else a canned response is returned.

    Every rule is guarded by the route's ACL `rid`. Techniques: `http_auth_bearer` for the token,
    `jwt_header_query('$.alg')` compared with RS256, `jwt_verify(RS256,<pem file>)` must be 1,
    `jwt_payload_query('$.exp','int')` minus `date()` must be > 0, string equality for iss/aud, a PCRE whole-word
    match on the scope claim.
    """
    if not _SCOPE_TOKEN.fullmatch(route.required_scope):
        raise ValueError(f"required_scope must be one RFC 6749 scope token: {route.required_scope!r}")
    r = rid
    challenge = 'Bearer error="insufficient_scope"'
    if "%" not in route.required_scope:  # header values are log-format strings; keep it simple
        challenge += f', scope="{route.required_scope}"'
    scope_re = f"(^| ){re.escape(route.required_scope)}( |$)"
    rules = [
        f"http-request set-var(txn.bearer) http_auth_bearer if {r}",
        _unauthorized(f"{r} !{{ var(txn.bearer) -m len gt 0 }}", invalid=False),
        # Header: must decode and say RS256 (refuses alg=none and HS256-with-the-public-key confusion).
        f"http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg') if {r}",
        _unauthorized(f"{r} !{{ var(txn.jwt_alg) -m str RS256 }}"),
        # Signature, checked with the fixed algorithm (never the one the token names).
        _unauthorized(f"{r} !{{ var(txn.bearer),jwt_verify(RS256,{key_path}) -m int 1 }}"),
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


def _auth_rules(route: Route, rid: str, keys_dir: Path) -> list[str]:
    """Dispatch on the route's auth style. Contract: reject with a canned response, or leave txn.consumer set."""
    if isinstance(route, JwtRoute):
        key_path = keys_dir / f"{rid}.pem"
        _write_public_key(route.public_key_pem, key_path)
        if not _SAFE_PATH.fullmatch(str(key_path)):
            raise ValueError(f"key path not usable inside an haproxy sample expression: {key_path}")
        return _jwt_rules(route, rid, key_path)
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


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
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
    try:
        url = f"http://127.0.0.1:{port}"
        proc = procs.start(
            "haproxy",
            ["haproxy", "-f", str(cfg), "-db"],
            log_dir=logs,
            ready=lambda: procs.http_ok(url + "/"),
            cwd=workdir,
            timeout=15,
        )
    except BaseException:
        upstream.stop()
        raise
    return Gateway(url=url, upstream_log=upstream_log, proc=proc, upstream=upstream)
