"""The whole local stack in one call: OpenBao (AppRole, read-only policy), oidc-provider, HAProxy + echo.

Used by the test suite (one session-wide stack) and by the demo. Every secret planted here is listed
by ``Stack.planted_secrets()`` so that tests can scan output for leaks.

One gateway route per way Kong authenticates (see `FLOW_ROUTES`; `Stack.flow_auth()` gives the matching
``kong_auth`` block):

* ``/orders``: openid-connect against the IdP (client_credentials, every client authentication method);
* ``/jwt-orders``: Kong's jwt plugin with HS256, RS256 and ES256 consumer credentials (`KONG_JWT_KEYS`);
* ``/key-orders``: Kong's key-auth with a key map;
* ``/vault-orders``: openid-connect against Vault's identity tokens (ES256 named key, role `VAULT_IDENTITY_ROLE`,
  an entity + alias for the AppRole login, the AppRole policy may read ``identity/oidc/token/<role>``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.gateway import Gateway, JwtRoute, KeyAuthRoute, KongJwtCredential, KongJwtRoute, jwk_to_pem, start_gateway
from devstack.idp import Idp, IdpClient, public_jwk, start_idp
from devstack.openbao import OpenBao, start_openbao

ORDERS_AUDIENCE = "https://kong.example.com/orders"
ORDERS_SCOPE = "orders:read"
ORDERS_WRITE_SCOPE = "orders:write"
ORDERS_WRITE_ROUTE = "/write/orders"  # like /orders, but the token's scope must hold orders:write
KV1_MOUNT = "kv1"
READ_PREFIXES = ("connections", "variables", "config", "kong-credentials")

# The other ways Kong authenticates (one gateway route each).
FLOW_ROUTES = {
    "client_credentials": "/orders",
    "kong_jwt": "/jwt-orders",
    "key_auth": "/key-orders",
    "vault_identity": "/vault-orders",
}
KONG_JWT_KEYS = {"HS256": "airflow-jwt-hs", "RS256": "airflow-jwt-rs", "ES256": "airflow-jwt-es"}
KONG_JWT_MAXIMUM_EXPIRATION = 900
KEY_AUTH_CONSUMER = "airflow-key-consumer"
VAULT_IDENTITY_ROLE = "kong-orders"
VAULT_IDENTITY_KEY = "kong"
VAULT_IDENTITY_ENTITY = "airflow-worker"
VAULT_ORDERS_AUDIENCE = "https://kong.example.com/vault-orders"
# private_key_jwt clients: client_id -> (key type, kid)
PRIVATE_KEY_CLIENTS = {
    "airflow-pkjwt": ("rsa", "airflow-pkjwt-rsa-1"),
    "airflow-pkjwt-ec": ("ec", "airflow-pkjwt-ec-1"),
}


def _client(client_id: str, **kw: Any) -> IdpClient:
    return IdpClient(client_id=client_id, client_secret=f"{client_id}-secret-{secrets.token_hex(12)}", **kw)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem_file(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def _new_key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class VaultIdentitySetup:
    """What OpenBao's identity OIDC provider was configured with, and its verification key as PEM."""

    role: str
    issuer: str
    audience: str
    entity_id: str
    public_key_pem_path: Path
    kid: str


@dataclass
class FlowSecrets:
    """The credentials of the non-IdP-secret flows: Kong jwt credentials, API keys, client private keys."""

    private_keys: dict[str, str] = field(default_factory=dict, repr=False)  # client_id -> PEM
    kong_jwt: dict[str, str] = field(default_factory=dict, repr=False)  # algorithm -> secret or PEM
    api_key: str = field(default="", repr=False)


@dataclass
class Stack:
    workdir: Path
    bao: OpenBao
    idp: Idp
    gateway: Gateway
    clients: dict[str, IdpClient]
    role_id: str
    secret_id: str = field(repr=False)
    flow_secrets: FlowSecrets = field(default_factory=FlowSecrets, repr=False)
    vault_identity: VaultIdentitySetup | None = None

    def backend_kwargs(self, **extra: Any) -> dict[str, Any]:
        """VaultBackend-style kwargs logging in with the read-only AppRole."""
        return {
            "url": self.bao.url,
            "auth_type": "approle",
            "role_id": self.role_id,
            "secret_id": self.secret_id,
            **extra,
        }

    def gateway_host_port(self) -> tuple[str, int]:
        host, port = self.gateway.url.removeprefix("http://").split(":")
        return host, int(port)

    def kong_auth(self, client: str = "airflow-orders", **overrides: Any) -> dict[str, Any]:
        """A client_credentials kong_auth block for one of the IdP's clients; an override of None drops a field."""
        idp_client = self.clients[client]
        block: dict[str, Any] = {
            "flow": "client_credentials",
            "token_url": self.idp.token_url,
            "client_id": idp_client.client_id,
            "client_secret": idp_client.client_secret,
            "client_auth_method": idp_client.token_endpoint_auth_method,
            "scope": ORDERS_SCOPE,
            "audience": ORDERS_AUDIENCE,
        }
        block.update(overrides)
        return {k: v for k, v in block.items() if v is not None}

    def kong_connection(self, client: str = "airflow-orders", **overrides: Any) -> dict[str, Any]:
        return self.connection(self.kong_auth(client, **overrides))

    def connection(self, kong_auth: dict[str, Any]) -> dict[str, Any]:
        """A connection secret pointing at the gateway, with this kong_auth block."""
        host, port = self.gateway_host_port()
        return {
            "conn_type": "http",
            "host": host,
            "port": port,
            "schema": "http",
            "extra": {"Accept": "application/json"},
            "kong_auth": kong_auth,
        }

    def flow_auth(self, flow: str, **overrides: Any) -> dict[str, Any]:
        """A kong_auth block that the gateway route of `flow` accepts; an override of None drops a field.

        flow: ``private_key_jwt`` (RSA, via OpenID discovery), ``private_key_jwt_ec``, ``client_secret_jwt``,
        ``kong_jwt`` (HS256), ``kong_jwt_rs256``, ``kong_jwt_es256``, ``key_auth``, ``vault_identity``.
        """
        fs = self.flow_secrets
        block: dict[str, Any]
        if flow in ("private_key_jwt", "private_key_jwt_ec"):
            client = "airflow-pkjwt" if flow == "private_key_jwt" else "airflow-pkjwt-ec"
            block = {
                "flow": "client_credentials",
                "client_id": client,
                "client_auth_method": "private_key_jwt",
                "private_key": fs.private_keys[client],
                "kid": PRIVATE_KEY_CLIENTS[client][1],
                "scope": ORDERS_SCOPE,
                "audience": ORDERS_AUDIENCE,
            }
            block.update(
                {"issuer": self.idp.issuer} if flow == "private_key_jwt" else {"token_url": self.idp.token_url}
            )
        elif flow == "client_secret_jwt":
            block = {
                "flow": "client_credentials",
                "token_url": self.idp.token_url,
                "client_id": "airflow-csjwt",
                "client_secret": self.clients["airflow-csjwt"].client_secret,
                "client_auth_method": "client_secret_jwt",
                "scope": ORDERS_SCOPE,
                "resource": ORDERS_AUDIENCE,
            }
        elif flow in ("kong_jwt", "kong_jwt_rs256", "kong_jwt_es256"):
            alg = {"kong_jwt": "HS256", "kong_jwt_rs256": "RS256", "kong_jwt_es256": "ES256"}[flow]
            material = {"secret": fs.kong_jwt[alg]} if alg == "HS256" else {"private_key": fs.kong_jwt[alg]}
            block = {"flow": "kong_jwt", "key": KONG_JWT_KEYS[alg], "algorithm": alg, **material}
        elif flow == "key_auth":
            block = {"flow": "key_auth", "key": fs.api_key}
        elif flow == "vault_identity":
            block = {"flow": "vault_identity", "role": VAULT_IDENTITY_ROLE}
        else:
            raise ValueError(f"unknown flow {flow!r}")
        block.update(overrides)
        return {k: v for k, v in block.items() if v is not None}

    def flow_connection(self, flow: str, **overrides: Any) -> dict[str, Any]:
        return self.connection(self.flow_auth(flow, **overrides))

    def put(self, path: str, data: dict[str, Any], *, mount: str = "secret", kv_version: int = 2) -> int | None:
        return self.bao.put_secret(mount, path, data, kv_version=kv_version)

    def planted_secrets(self) -> list[str]:
        fs = self.flow_secrets
        pems = [*fs.private_keys.values(), *(v for v in fs.kong_jwt.values() if "PRIVATE KEY" in v)]
        key_lines = [_longest_line(p) for p in pems]  # a PEM shows up line by line, or escaped, in a log
        hs = [v for v in fs.kong_jwt.values() if "PRIVATE KEY" not in v]
        planted = [
            self.bao.root_token,
            self.secret_id,
            *(c.client_secret for c in self.clients.values()),  # "" for the private_key_jwt client
            *key_lines,
            *hs,
            fs.api_key,
        ]
        return [value for value in planted if value]

    def stop(self) -> None:
        for part in (self.gateway, self.idp, self.bao):
            with contextlib.suppress(Exception):
                part.stop()


def _longest_line(pem: str) -> str:
    return max(pem.splitlines(), key=len)


def _flow_secrets(workdir: Path) -> tuple[FlowSecrets, list[IdpClient], list[KongJwtCredential]]:
    """Fresh keys and secrets for the private_key_jwt clients, the Kong jwt consumers and key-auth."""
    fs = FlowSecrets(api_key=f"kak-{secrets.token_hex(20)}")
    idp_clients = [_client("airflow-csjwt", token_endpoint_auth_method="client_secret_jwt")]
    for client_id, (kind, kid) in PRIVATE_KEY_CLIENTS.items():
        key = _new_key(kind)
        fs.private_keys[client_id] = _pem(key)
        idp_clients.append(
            IdpClient(
                client_id=client_id,
                client_secret="",
                token_endpoint_auth_method="private_key_jwt",
                jwks={"keys": [public_jwk(key.public_key(), kid)]},
            )
        )
    creds = []
    for alg, key_name in KONG_JWT_KEYS.items():
        consumer = f"{key_name}-consumer"
        if alg == "HS256":
            fs.kong_jwt[alg] = secrets.token_hex(32)
            creds.append(KongJwtCredential(key_name, consumer, alg, secret=fs.kong_jwt[alg]))
        else:
            key = _new_key("rsa" if alg == "RS256" else "ec")
            fs.kong_jwt[alg] = _pem(key)
            pem = _public_pem_file(key, workdir / "kong-jwt" / f"{key_name}.pub.pem")
            creds.append(KongJwtCredential(key_name, consumer, alg, public_key_pem=pem))
    return fs, idp_clients, creds


def _vault_identity_policy() -> str:
    return f'path "identity/oidc/token/{VAULT_IDENTITY_ROLE}" {{\n  capabilities = ["read"]\n}}\n'


def setup_vault_identity(bao: OpenBao, role_id: str, secret_id: str, workdir: Path) -> VaultIdentitySetup:
    """OpenBao's identity OIDC provider for the AppRole login: issuer, ES256 named key, role, entity + alias.

    The verification key is taken from Vault's JWKS (``identity/oidc/.well-known/keys``), picked by the kid of a
    token signed for the AppRole login, and written as PEM for the gateway.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    root = bao.client()
    identity = root.secrets.identity
    identity.configure_tokens_backend(issuer=bao.url)
    identity.create_named_key(
        VAULT_IDENTITY_KEY, algorithm="ES256", allowed_client_ids=[VAULT_ORDERS_AUDIENCE], rotation_period="24h"
    )
    identity.create_or_update_role(
        VAULT_IDENTITY_ROLE,
        key=VAULT_IDENTITY_KEY,
        client_id=VAULT_ORDERS_AUDIENCE,
        ttl="5m",
        template=json.dumps({"scope": ORDERS_SCOPE}),
    )
    identity.create_or_update_entity(name=VAULT_IDENTITY_ENTITY)
    entity_id = identity.read_entity_by_name(VAULT_IDENTITY_ENTITY)["data"]["id"]
    accessor = root.sys.list_auth_methods()["data"]["approle/"]["accessor"]
    identity.create_or_update_entity_alias(name=role_id, canonical_id=entity_id, mount_accessor=accessor)

    login = bao.client(token="")
    login.auth.approle.login(role_id=role_id, secret_id=secret_id)
    token = login.secrets.identity.generate_signed_id_token(VAULT_IDENTITY_ROLE)["data"]["token"]
    login.auth.token.revoke_self()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    jwks = root.secrets.identity.read_active_public_keys()
    jwk = next(k for k in jwks["keys"] if k.get("kid") == header["kid"])
    pem_path = workdir / "vault-identity.pub.pem"
    pem_path.write_bytes(jwk_to_pem(jwk))
    return VaultIdentitySetup(
        role=VAULT_IDENTITY_ROLE,
        issuer=f"{bao.url}/v1/identity/oidc",
        audience=VAULT_ORDERS_AUDIENCE,
        entity_id=entity_id,
        public_key_pem_path=pem_path,
        kid=header["kid"],
    )


def start_stack(workdir: Path) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    flow_secrets, flow_clients, kong_jwt_credentials = _flow_secrets(workdir / "flows")
    clients = {
        c.client_id: c
        for c in (
            _client("airflow-orders", access_token_ttl=300),
            _client("airflow-post", access_token_ttl=300, token_endpoint_auth_method="client_secret_post"),
            _client("airflow-short", access_token_ttl=20),
            _client("airflow-blink", access_token_ttl=5),  # expires between two pages of a paginated task
            _client("airflow-reports", scope="reports:read", access_token_ttl=300),
            # may write orders too: task_scopes give only some tasks the write scope
            _client("airflow-writer", scope=f"{ORDERS_SCOPE} {ORDERS_WRITE_SCOPE}", access_token_ttl=300),
            *flow_clients,
        )
    }
    started: list[Any] = []
    try:
        bao = start_openbao(workdir / "openbao")
        started.append(bao)
        bao.enable_kv(KV1_MOUNT, 1)
        policy = (
            bao.read_only_policy("secret", READ_PREFIXES) + "\n" + bao.read_only_policy(KV1_MOUNT, READ_PREFIXES, 1)
        )
        policy += "\n" + _vault_identity_policy()
        role_id, secret_id = bao.setup_approle("airflow", "airflow-read", policy)
        vault_identity = setup_vault_identity(bao, role_id, secret_id, workdir / "vault-identity")
        idp = start_idp(workdir / "idp", list(clients.values()), [ORDERS_AUDIENCE, "https://kong.example.com/reports"])
        started.append(idp)
        gateway = start_gateway(
            workdir / "gateway",
            [
                JwtRoute(
                    "/orders", idp.public_key_pem_path, idp.issuer, ORDERS_AUDIENCE, ORDERS_SCOPE, rate_limit=1000
                ),
                JwtRoute(
                    ORDERS_WRITE_ROUTE,
                    idp.public_key_pem_path,
                    idp.issuer,
                    ORDERS_AUDIENCE,
                    ORDERS_WRITE_SCOPE,
                    rate_limit=1000,
                ),
                KongJwtRoute(
                    FLOW_ROUTES["kong_jwt"],
                    tuple(kong_jwt_credentials),
                    maximum_expiration=KONG_JWT_MAXIMUM_EXPIRATION,
                    rate_limit=1000,
                ),
                KeyAuthRoute(FLOW_ROUTES["key_auth"], {flow_secrets.api_key: KEY_AUTH_CONSUMER}, rate_limit=1000),
                JwtRoute(
                    FLOW_ROUTES["vault_identity"],
                    vault_identity.public_key_pem_path,
                    vault_identity.issuer,
                    vault_identity.audience,
                    ORDERS_SCOPE,
                    rate_limit=1000,
                    algorithm="ES256",
                ),
            ],
        )
    except BaseException:
        for part in reversed(started):
            with contextlib.suppress(Exception):
                part.stop()
        raise
    return Stack(
        workdir,
        bao,
        idp,
        gateway,
        clients,
        role_id,
        secret_id,
        flow_secrets=flow_secrets,
        vault_identity=vault_identity,
    )


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    stack = start_stack(workdir)
    try:
        yield stack
    finally:
        stack.stop()
