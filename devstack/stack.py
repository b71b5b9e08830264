"""The whole local stack in one call: OpenBao (AppRole, read-only policy), oidc-provider, HAProxy + echo.

Used by the test suite (one session-wide stack) and by the demo. Every secret planted here is listed
by ``Stack.planted_secrets()`` so that tests can scan output for leaks.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.gateway import Gateway, JwtRoute, start_gateway
from devstack.idp import Idp, IdpClient, start_idp
from devstack.openbao import OpenBao, start_openbao

ORDERS_AUDIENCE = "https://kong.example.com/orders"
ORDERS_SCOPE = "orders:read"
KV1_MOUNT = "kv1"
READ_PREFIXES = ("connections", "variables", "config", "kong-credentials")


def _client(client_id: str, **kw: Any) -> IdpClient:
    return IdpClient(client_id=client_id, client_secret=f"{client_id}-secret-{secrets.token_hex(12)}", **kw)


@dataclass
class Stack:
    workdir: Path
    bao: OpenBao
    idp: Idp
    gateway: Gateway
    clients: dict[str, IdpClient]
    role_id: str
    secret_id: str = field(repr=False)

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
        host, port = self.gateway_host_port()
        return {
            "conn_type": "http",
            "host": host,
            "port": port,
            "schema": "http",
            "extra": {"Accept": "application/json"},
            "kong_auth": self.kong_auth(client, **overrides),
        }

    def put(self, path: str, data: dict[str, Any], *, mount: str = "secret", kv_version: int = 2) -> int | None:
        return self.bao.put_secret(mount, path, data, kv_version=kv_version)

    def planted_secrets(self) -> list[str]:
        return [self.bao.root_token, self.secret_id, *(c.client_secret for c in self.clients.values())]

    def stop(self) -> None:
        for part in (self.gateway, self.idp, self.bao):
            with contextlib.suppress(Exception):
                part.stop()


def start_stack(workdir: Path) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    clients = {
        c.client_id: c
        for c in (
            _client("airflow-orders", access_token_ttl=300),
            _client("airflow-post", access_token_ttl=300, token_endpoint_auth_method="client_secret_post"),
            _client("airflow-short", access_token_ttl=20),
            _client("airflow-reports", scope="reports:read", access_token_ttl=300),
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
        role_id, secret_id = bao.setup_approle("airflow", "airflow-read", policy)
        idp = start_idp(workdir / "idp", list(clients.values()), [ORDERS_AUDIENCE, "https://kong.example.com/reports"])
        started.append(idp)
        gateway = start_gateway(
            workdir / "gateway",
            [JwtRoute("/orders", idp.public_key_pem_path, idp.issuer, ORDERS_AUDIENCE, ORDERS_SCOPE, rate_limit=1000)],
        )
    except BaseException:
        for part in reversed(started):
            with contextlib.suppress(Exception):
                part.stop()
        raise
    return Stack(workdir, bao, idp, gateway, clients, role_id, secret_id)


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    stack = start_stack(workdir)
    try:
        yield stack
    finally:
        stack.stop()
