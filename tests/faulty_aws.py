"""AWS Secrets Manager that misbehaves on purpose: a small HTTP proxy in front of the real moto server.

Point a backend's ``endpoint_url`` at `FaultyAws.url`. Every request is recorded (the X-Amz-Target operation, the
SecretId and VersionStage asked for) and then either forwarded to moto unchanged or answered with a fault:

* ``throttle``: HTTP 400 ``{"__type": "ThrottlingException", "message": "Rate exceeded"}`` (what AWS answers);
* ``500``: HTTP 500 ``{"__type": "InternalServiceError", ...}``;
* ``html500``: HTTP 500 with an HTML body (a load balancer's error page);
* ``hang``: no answer (for 30 s, or until `heal()`).

`fail(fault, times=n)` answers the next n requests with the fault (``times=None``: until `heal()`).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("throttle", "500", "html500", "hang")
_FORWARDED_REQUEST_HEADERS = ("Content-Type", "X-Amz-Target", "X-Amz-Date", "X-Amz-Security-Token", "Authorization")
_FORWARDED_RESPONSE_HEADERS = ("Content-Type", "x-amzn-RequestId")


@dataclass(frozen=True)
class SeenRequest:
    operation: str  # e.g. "GetSecretValue"
    secret_id: str | None
    version_stage: str | None
    answered: str  # "forwarded" or the fault


class FaultyAws:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.seen: list[SeenRequest] = []
        self._fault: str | None = None
        self._remaining: int | None = None
        self._lock = threading.Lock()
        self._released = threading.Event()  # ends every hanging answer

    def fail(self, fault: str, times: int | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        with self._lock:
            self._fault, self._remaining = fault, times
            self._released.clear()

    def heal(self) -> None:
        with self._lock:
            self._fault, self._remaining = None, None
            self._released.set()

    def reads(self, secret_id: str | None = None) -> list[SeenRequest]:
        """The GetSecretValue requests seen (of one secret), oldest first."""
        return [
            r
            for r in list(self.seen)
            if r.operation == "GetSecretValue" and (secret_id is None or r.secret_id == secret_id)
        ]

    def stages(self, secret_id: str) -> list[str | None]:
        return [r.version_stage for r in self.reads(secret_id)]

    def _next_fault(self) -> str | None:
        with self._lock:
            fault = self._fault
            if fault is not None and self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._fault, self._remaining = None, None
            return fault


def _handler(proxy: FaultyAws) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "faulty-aws"

        def log_message(self, format: str, *args: object) -> None:  # silence (bodies hold secrets)
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            try:
                params: Any = json.loads(body or b"{}")
            except ValueError:
                params = {}
            params = params if isinstance(params, dict) else {}
            fault = proxy._next_fault()
            proxy.seen.append(
                SeenRequest(
                    operation=target.rpartition(".")[2],
                    secret_id=params.get("SecretId"),
                    version_stage=params.get("VersionStage"),
                    answered=fault or "forwarded",
                )
            )
            aws_json = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "faulty-aws"}
            if fault == "throttle":
                self._send(400, b'{"__type":"ThrottlingException","message":"Rate exceeded"}', aws_json)
            elif fault == "500":
                self._send(500, b'{"__type":"InternalServiceError","message":"Internal error"}', aws_json)
            elif fault == "html500":
                self._send(500, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
            elif fault == "hang":
                proxy._released.wait(30)
                self.close_connection = True
            else:
                self._forward(body)

        def _forward(self, body: bytes) -> None:
            headers = {name: self.headers[name] for name in _FORWARDED_REQUEST_HEADERS if self.headers.get(name)}
            request = urllib.request.Request(f"{proxy.upstream}{self.path}", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    status, answer, resp_headers = resp.status, resp.read(), resp.headers
            except urllib.error.HTTPError as exc:
                status, answer, resp_headers = exc.code, exc.read(), exc.headers
            kept = {name: resp_headers[name] for name in _FORWARDED_RESPONSE_HEADERS if resp_headers.get(name)}
            self._send(status, answer, kept)

    return Handler


@contextmanager
def faulty_aws(upstream: str) -> Iterator[FaultyAws]:
    """A running FaultyAws in front of `upstream` (a moto server's URL), on a free loopback port."""
    proxy = FaultyAws(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.heal()
        server.shutdown()
        server.server_close()
