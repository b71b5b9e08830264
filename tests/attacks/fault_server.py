"""A peer that holds its client as long as it likes: a TCP server on 127.0.0.1 (free port) for deadline attacks.

Faults (``FaultServer.fault``):

* ``hang``: accept, read the request, never answer;
* ``drip_status``: the status line, one byte a second (then headers, as slowly);
* ``drip_headers``: the status line at once, then the headers one byte a second, never ending;
* ``drip_body``: status line and headers at once (``Content-Length: 100000``), then the body a byte a second;
* ``tls_stall``: (for an ``https://`` client) read the ClientHello, then answer a TLS handshake record one
  byte a second, never completing it;
* None: no fault: forward the request to ``upstream`` (a real peer) and relay its answer.

``only`` limits the fault to requests whose path starts with it (others are forwarded), so that one endpoint
of a real peer (e.g. Vault's JWKS) can be attacked while the rest of it works. Every request is answered on
its own connection (``Connection: close``).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

FAULTS = ("hang", "drip_status", "drip_headers", "drip_body", "tls_stall")
DRIP_INTERVAL = 1.0  # seconds between two bytes: longer than no per-read timeout a client would use


class FaultServer:
    def __init__(self, *, fault: str | None = None, upstream: str | None = None, only: str | None = None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault
        self.upstream = upstream
        self.only = only
        self.faulted = 0  # requests (connections for tls_stall) answered with the fault
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.fault == "tls_stall" else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- serving ---------------------------------------------------------------------------------

    def start(self) -> FaultServer:
        self._accepting.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._accepting.join(timeout=2)
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(0.5)
            fault = self.fault
            if fault == "tls_stall":
                self.faulted += 1
                self._read_some(conn)  # the ClientHello
                # a handshake record header and body, never complete: the client waits for the rest
                self._drip(conn, b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03" + b"\x00" * 1024)
                return
            request = self._read_request(conn)
            if request is None:
                return
            method, path, head, body = request
            if fault is None or (self.only is not None and not path.startswith(self.only)):
                self._forward(conn, method, path, head, body)
                return
            self.faulted += 1
            if fault == "hang":
                while not self._stop.wait(0.1) and self._still_open(conn):
                    pass
            elif fault == "drip_status":
                self._drip(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"a" * 100000)
            elif fault == "drip_headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                self._drip(conn, b"Content-Type: application/json\r\nX-Drip: " + b"a" * 100000)
            elif fault == "drip_body":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
                    b"Connection: close\r\n\r\n"
                )
                self._drip(conn, b" " * 100000)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.is_set():
                return
            conn.sendall(data[i : i + 1])
            if self._stop.wait(DRIP_INTERVAL):
                return

    def _still_open(self, conn: socket.socket) -> bool:
        """False once the client closed or shut down its side."""
        try:
            conn.settimeout(0)
            return conn.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _read_some(self, conn: socket.socket) -> bytes:
        try:
            return conn.recv(65536)
        except OSError:
            return b""

    def _read_request(self, conn: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        head_bytes, _, body = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        try:
            method, path, _ = lines[0].split(" ", 2)
        except ValueError:
            return None
        head: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            head[name.strip()] = value.strip()
        length = int(next((v for k, v in head.items() if k.lower() == "content-length"), "0") or 0)
        while len(body) < length and time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            body += chunk
        return method, path, head, body

    def _forward(self, conn: socket.socket, method: str, path: str, head: dict[str, str], body: bytes) -> None:
        if self.upstream is None:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        target = urlsplit(self.upstream)
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
        skip = {"host", "connection", "keep-alive", "transfer-encoding", "accept-encoding"}
        headers = {k: v for k, v in head.items() if k.lower() not in skip}
        headers["Accept-Encoding"] = "identity"
        try:
            upstream.request(method, path, body=body or None, headers=headers)
            resp = upstream.getresponse()
            answer = resp.read()
            out = [f"HTTP/1.1 {resp.status} {resp.reason}".encode()]
            for name, value in resp.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                    out.append(f"{name}: {value}".encode("latin-1"))
            out += [f"Content-Length: {len(answer)}".encode(), b"Connection: close", b"", b""]
            conn.sendall(b"\r\n".join(out) + answer)
        finally:
            upstream.close()


@contextmanager
def fault_server(
    fault: str | None = None, *, upstream: str | None = None, only: str | None = None
) -> Iterator[FaultServer]:
    """A running FaultServer, stopped on exit."""
    server = FaultServer(fault=fault, upstream=upstream, only=only).start()
    try:
        yield server
    finally:
        server.stop()
