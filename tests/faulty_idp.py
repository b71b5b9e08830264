"""A token endpoint that misbehaves on purpose: each path is one fault. For fault-injection tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

GOOD = {"access_token": "faulty-idp-token-value", "token_type": "Bearer", "expires_in": 120}


class _Handler(BaseHTTPRequestHandler):
    server_version = "faulty-idp"
    requests_seen: ClassVar[list[tuple[str, dict[str, str], str]]] = []
    switch_modes: ClassVar[dict[str, str]] = {}  # what POST /switch/<id> does: "ok" (a token) or a fault name
    switch_expires_in: ClassVar[int] = 8  # the lifetime of tokens from /switch/<id>
    flaky_counts: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:  # silence
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        type(self).requests_seen.append((self.path, dict(self.headers), body))
        fault = self.path.strip("/")
        if fault.startswith("switch/"):
            fault = type(self).switch_modes.get(fault.removeprefix("switch/"), "ok")
            if fault == "ok":
                self._send(200, json.dumps({**GOOD, "expires_in": type(self).switch_expires_in}).encode())
                return
        if fault.startswith("flaky/"):  # flaky/<n>/<id>: the first n requests answer 503, then a token
            _, failures, ident = fault.split("/", 2)
            seen = type(self).flaky_counts[ident] = type(self).flaky_counts.get(ident, 0) + 1
            fault = "503" if seen <= int(failures) else "ok"
        if fault == "ok":
            self._send(200, json.dumps(GOOD).encode())
        elif fault == "redirect":
            self._send(302, b"", Location="http://127.0.0.1:9/steal")
        elif fault == "invalid_client":
            self._send(401, json.dumps({"error": "invalid_client", "error_description": "bad secret"}).encode())
        elif fault in ("unauthorized_client", "invalid_scope"):  # RFC 6749 §5.2 errors, answered with 400
            description = f"{fault.replace('_', ' ')} for this client"
            self._send(400, json.dumps({"error": fault, "error_description": description}).encode())
        elif fault == "html":
            self._send(200, b"<html>login page</html>", "text/html")
        elif fault == "no_access_token":
            self._send(200, json.dumps({"token_type": "Bearer", "expires_in": 60}).encode())
        elif fault == "mac":
            self._send(200, json.dumps({**GOOD, "token_type": "mac"}).encode())
        elif fault == "negative_expiry":
            self._send(200, json.dumps({**GOOD, "expires_in": -5}).encode())
        elif fault == "no_expiry":
            self._send(200, json.dumps({"access_token": "faulty-idp-token-value", "token_type": "bearer"}).encode())
        elif fault == "huge":
            self._send(200, b'{"access_token": "' + b"x" * (10 * 1024 * 1024) + b'"}')
        elif fault == "huge_chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(200):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif fault == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif fault == "slow":
            time.sleep(30)
            self._send(200, json.dumps(GOOD).encode())
        elif fault == "503":
            self._send(503, b"try again", "text/plain")
        elif fault == "down":  # the connection is dropped without an answer
            self.close_connection = True
            self.connection.shutdown(2)
        elif fault == "500":
            self._send(500, b"upstream exploded", "text/plain")
        else:
            self._send(404, b"{}")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the backend's deadline) is the point of these faults: no traceback."""


@contextmanager
def faulty_idp() -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of a running faulty token endpoint."""
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
