"""A token endpoint (and OpenID discovery) that answers whatever raw JSON a test sets: lifetimes a parser chokes on,
claims carrying terminal escapes; over plain HTTP or TLS with a certificate of the test's choosing.

``POST /token/<name>`` answers the raw body registered under ``name`` (``answers[name] = b'{...}'``);
``GET /.well-known/openid-configuration`` names ``<base>/token/ok`` as the token endpoint. Every POST is counted.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def client_flow(idp: AnsweringIdp, secret: str, *, version: str = "7", **block: Any) -> Any:
    """A client_credentials flow at this IdP (client airflow-orders, scope orders:read) with ``secret``."""
    from kong_secrets_backend.flows import build_flow, parse_credential
    from kong_secrets_backend.transport.http import HttpTransport
    from tests.backend_settings import NO_SOURCE, SETTINGS

    fields = {"token_url": idp.token_url("ok"), "client_id": "airflow-orders", "client_secret": secret, **block}
    cred = parse_credential({"scope": "orders:read", **fields}, settings=SETTINGS, version=version)
    return build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWS-shaped token (the backend reads, never verifies, an IdP's token: the gateway does)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}.c2lnbmF0dXJl"


def token_body(access_token: str = "answering-idp-token-value", **fields: Any) -> bytes:
    return json.dumps({"access_token": access_token, "token_type": "Bearer", **fields}).encode()


@dataclass
class AnsweringIdp:
    base: str
    answers: dict[str, bytes] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)

    def token_url(self, name: str) -> str:
        return f"{self.base}/token/{name}"

    def count(self, name: str) -> int:
        return sum(1 for path in self.posts if path == f"/token/{name}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    idp: AnsweringIdp

    def handle_error(self, request: object, client_address: object) -> None:
        """A refused TLS handshake is the point of some tests: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        idp = self.server.idp
        if self.path == "/.well-known/openid-configuration":
            self._send(200, json.dumps({"issuer": idp.base, "token_endpoint": idp.token_url("ok")}).encode())
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        idp = self.server.idp
        idp.posts.append(self.path)
        name = self.path.removeprefix("/token/")
        if name == "ok" and name not in idp.answers:
            self._send(200, token_body(expires_in=300))
        elif name in idp.answers:
            self._send(200, idp.answers[name])
        else:
            self._send(404, b"{}")


@contextmanager
def answering_idp(*, cert: tuple[str, str] | None = None, host: str = "127.0.0.1") -> Iterator[AnsweringIdp]:
    """A running IdP on a loopback address: plain HTTP, or TLS with ``cert`` (certificate file, key file)."""
    server = _Server((host, 0), _Handler)
    scheme = "http"
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    server.idp = AnsweringIdp(base=f"{scheme}://{host}:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.idp
    finally:
        server.shutdown()
        server.server_close()
