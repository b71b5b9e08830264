"""A tiny HTTP upstream for the local gateway: logs every request as one JSON line and answers with fake data.

Run as ``python devstack/echo.py --port P --log FILE [--host ADDR]`` (default 127.0.0.1). Any method, any path is
answered 200 with ``{"path", "method", "consumer", "scope", "items"}`` (and ``"next_page"`` when the query has
``page=N`` with N < 3). A query ``delay=S`` makes the answer come S seconds later (at most `MAX_DELAY`), as a slow
API would.
The request is appended to FILE as ``{"method", "path", "query", "headers", "body"}`` (header names lower-cased,
``query`` is the raw query string).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LAST_PAGE = 3
MAX_DELAY = 8.0  # below the gateway's 10 s server timeout
PAGE_SIZE = 2


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every method through `_handle` (see `__getattr__`)."""

    server_version = "echo/1"
    protocol_version = "HTTP/1.1"
    log_file: Path = Path("echo.jsonl")
    log_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; accept any method.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = {
            "method": self.command,
            "path": parts.path,
            "query": parts.query,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
        }
        with self.log_lock, self.log_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

        delay = _delay(parts.query)
        if delay:
            time.sleep(delay)
        page = _page(parts.query)
        first = (page - 1) * PAGE_SIZE + 1 if page else 1
        answer: dict[str, Any] = {
            "path": parts.path,
            "method": self.command,
            "consumer": headers.get("x-consumer-username"),
            "scope": headers.get("x-authenticated-scope"),
            "items": [{"id": i, "name": f"item-{i}"} for i in range(first, first + PAGE_SIZE)],
        }
        if page is not None and page < LAST_PAGE:
            answer["next_page"] = page + 1
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the JSON log is the record; keep stderr quiet


def _page(query: str) -> int | None:
    values = parse_qs(query).get("page")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        return None


def _delay(query: str) -> float:
    values = parse_qs(query).get("delay")
    try:
        return min(max(float(values[-1]), 0.0), MAX_DELAY) if values else 0.0
    except ValueError:
        return 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.touch()
    EchoHandler.log_file = args.log
    server = ThreadingHTTPServer((args.host, args.port), EchoHandler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
