"""A real local OpenID Provider (panva/oidc-provider 8.x, see devstack/idp/server.mjs) for tests and the demo.

`start_idp(workdir, clients, audiences)` writes a config with a fresh RSA signing key, starts
``node server.mjs`` on a free loopback port and returns an `Idp` handle. Only the client_credentials grant is
enabled; access tokens are RS256 JWTs whose ``aud`` is the requested ``audience``/``resource`` (or the default).
Clients authenticate with client_secret_basic/post, client_secret_jwt or private_key_jwt (see `public_jwk`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack import procs
from devstack.procs import Proc

IDP_DIR = Path(__file__).resolve().parent / "idp"
SERVER_JS = IDP_DIR / "server.mjs"
HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class IdpClient:
    """A client of the IdP. ``private_key_jwt`` clients have ``jwks`` (public keys) and an empty secret;
    ``client_secret_jwt`` clients sign their assertion with ``client_secret`` (HS256/384/512)."""

    client_id: str
    client_secret: str = field(repr=False)
    scope: str = "orders:read"
    access_token_ttl: int = 300
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


@dataclass
class Idp:
    issuer: str
    token_url: str
    jwks_url: str
    public_key_pem_path: Path
    kid: str
    proc: Proc

    def _stats(self) -> dict[str, Any]:
        resp = requests.get(f"{self.issuer}/_test/stats", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        stats: dict[str, Any] = resp.json()
        return stats

    def token_requests(self, client_id: str | None = None) -> int:
        """POSTs to the token endpoint since start / the last `reset_counts()` (all, or for one client)."""
        stats = self._stats()
        if client_id is None:
            return int(stats["token_requests"])
        return int(stats["token_requests_by_client"].get(client_id, 0))

    def reset_counts(self) -> None:
        requests.post(f"{self.issuer}/_test/reset", timeout=HTTP_TIMEOUT).raise_for_status()

    def put_client(self, client: IdpClient) -> None:
        """Add or replace a client; takes effect for the next token request (e.g. to rotate a secret)."""
        resp = requests.post(f"{self.issuer}/_test/clients", json=client.to_json(), timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise RuntimeError(f"put_client({client.client_id}) failed: {resp.status_code} {resp.text}")

    def stop(self) -> None:
        self.proc.stop()


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} not found on PATH; Node.js 18+ with npm is needed for the local IdP")
    return path


def _npm() -> str:
    return _which("npm")


def _node() -> str:
    return _which("node")


def ensure_node_modules() -> None:
    """`npm ci` in devstack/idp when node_modules is missing or older than package-lock.json."""
    lock = IDP_DIR / "package-lock.json"
    marker = IDP_DIR / "node_modules" / ".package-lock.json"  # written by npm on every install
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        [_npm(), "ci", "--no-audit", "--no-fund"],
        cwd=IDP_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci failed in {IDP_DIR}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _private_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    priv = key.private_numbers()
    pub = priv.public_numbers
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": _b64url_uint(pub.n),
        "e": _b64url_uint(pub.e),
        "d": _b64url_uint(priv.d),
        "p": _b64url_uint(priv.p),
        "q": _b64url_uint(priv.q),
        "dp": _b64url_uint(priv.dmp1),
        "dq": _b64url_uint(priv.dmq1),
        "qi": _b64url_uint(priv.iqmp),
    }


def public_jwk(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, kid: str | None = None) -> dict[str, str]:
    """The public JWK of an RSA or EC (P-256/384/521) key, as a private_key_jwt client registers it."""
    jwk: dict[str, str]
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    else:
        size = (public_key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public_key.curve.name]
        ec_numbers = public_key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": base64.urlsafe_b64encode(ec_numbers.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(ec_numbers.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        }
    jwk["use"] = "sig"
    if kid:
        jwk["kid"] = kid
    return jwk


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def start_idp(
    workdir: Path,
    clients: Sequence[IdpClient],
    audiences: Sequence[str],
    default_audience: str | None = None,
) -> Idp:
    """Start oidc-provider on a free 127.0.0.1 port with a fresh RS256 key; wait for its discovery document."""
    if not audiences:
        raise ValueError("at least one audience is required")
    default = default_audience if default_audience is not None else audiences[0]
    if default not in audiences:
        raise ValueError(f"default_audience {default!r} is not one of {list(audiences)!r}")

    ensure_node_modules()
    workdir.mkdir(parents=True, exist_ok=True)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")
    public_pem_path = workdir / "idp-signing-key.pub.pem"
    public_pem_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    port = procs.free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = {
        "issuer": issuer,
        "port": port,
        "jwks": {"keys": [_private_jwk(key, kid)]},
        "clients": [c.to_json() for c in clients],
        "audiences": list(audiences),
        "default_audience": default,
    }
    config_path = workdir / "idp-config.json"
    _write_private(config_path, json.dumps(config, indent=2))

    discovery = f"{issuer}/.well-known/openid-configuration"
    proc = procs.start(
        "idp",
        [_node(), str(SERVER_JS)],
        log_dir=workdir,
        ready=lambda: procs.http_ok(discovery),
        env={"IDP_CONFIG": str(config_path)},
        cwd=IDP_DIR,
        timeout=30.0,
    )
    try:
        meta = requests.get(discovery, timeout=HTTP_TIMEOUT).json()
    except Exception:
        proc.stop()
        raise
    return Idp(
        issuer=issuer,
        token_url=str(meta["token_endpoint"]),
        jwks_url=str(meta["jwks_uri"]),
        public_key_pem_path=public_pem_path,
        kid=kid,
        proc=proc,
    )
