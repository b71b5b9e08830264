"""Attack: `kong-secrets-backend check` as a leak and a terminal-injection vector. A Redis password in `token_cache`
must not be printed (text, --json, on failure); claims from a hostile IdP and headers from a hostile gateway
carrying ESC sequences must be escaped. Real OpenBao and redis-server; the hostile peers on loopback.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack.redis import Redis, start_redis
from devstack.stack import Stack
from kong_secrets_backend import cli
from kong_secrets_backend.cli.check import safe_url, scrub_text
from tests.attacks.answering_idp import AnsweringIdp, token_body, unsigned_jwt
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

OURS = "kong_secrets_backend.KongSecretsBackend"
ESC = "\x1b"
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mroot\u202e"  # set the title, clear the screen, red, reverse text
Check = Callable[..., tuple[int, str]]


@pytest.fixture
def check(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Check]:
    from kong_secrets_backend.airflow_bridge.compat import _conf

    _conf()
    for name in list(os.environ):
        if name.startswith(("AIRFLOW__WORKERS__SECRETS_BACKEND", "AIRFLOW__SECRETS__BACKEND")):
            monkeypatch.delenv(name)

    def run(*args: str, kwargs: dict[str, Any]) -> tuple[int, str]:
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", json.dumps(kwargs))
        code = cli.main(["check", *args])
        out, err = capsys.readouterr()
        assert not err, err
        LEAKS.record("check output", out)
        return code, out

    yield run


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    running = start_redis(tmp_path / "redis", password=f"planted-redis-pw-{uuid.uuid4().hex[:12]}")
    LEAKS.plant(running.password)
    try:
        yield running
    finally:
        running.stop()


class _HostileGateway(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"message": "fine"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Kong-Upstream-Latency", HOSTILE.encode().decode("latin-1"))
        self.send_header("RateLimit-Remaining", "\x1b[2J99")
        self.send_header("Server", "kong\x1b]0;gateway-title\x07")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile_gateway() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileGateway)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def assert_safe(out: str, *planted: str) -> None:
    assert ESC not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
    assert_no_secrets(out, [p for p in planted if p])


def test_a_redis_password_is_never_printed_on_success_or_failure(
    stack: Stack, check: Check, redis_server: Redis
) -> None:
    url = f"redis://default:{redis_server.password}@127.0.0.1:{redis_server.port}/0"
    kwargs = stack.backend_kwargs(token_cache=url)
    shown = f"redis://127.0.0.1:{redis_server.port}/0"
    cid = f"chk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection())
    outputs = [
        check(cid, kwargs=kwargs),  # ok
        check(cid, "--json", kwargs=kwargs),
        check("no_such_conn_here", kwargs=kwargs),  # not found
        check("no_such_conn_here", "--json", kwargs=kwargs),
    ]
    assert [code for code, _ in outputs] == [0, 0, 1, 1]
    for i, (_, out) in enumerate(outputs):
        assert shown in out or i == 2  # the text report of a failed lookup has no cache line
        assert "default:" not in out and "@127.0.0.1" not in out
        assert_safe(out, redis_server.password, *stack.planted_secrets())
    report = json.loads(outputs[1][1])
    assert report["backend"]["token_cache"] == shown and report["cache"]["mode"] == shown


def test_a_redis_password_is_not_printed_when_redis_is_down_either(stack: Stack, check: Check) -> None:
    password = f"down-redis-pw-{uuid.uuid4().hex[:12]}"
    LEAKS.plant(password)
    kwargs = stack.backend_kwargs(token_cache=f"redis://admin:{password}@127.0.0.1:1")
    cid = f"chk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection())
    code, out = check(cid, kwargs=kwargs)
    assert code == 0 and "redis://127.0.0.1:1/0" in out and "unavailable" in out  # the WARNING, as a note
    assert_safe(out, password)
    code, out = check(cid, "--json", kwargs=kwargs)  # served from memory now: no second WARNING
    assert code == 0 and json.loads(out)["backend"]["token_cache"] == "redis://127.0.0.1:1/0"
    assert_safe(out, password)


def test_escape_sequences_in_claims_are_escaped(stack: Stack, check: Check, idp: AnsweringIdp) -> None:
    import time

    claims = {"sub": HOSTILE, "aud": ["orders", "\x1b[8mhidden"], "scope": "read\x9bwrite", "exp": time.time() + 300}
    idp.answers["esc"] = token_body(unsigned_jwt(claims), expires_in=300)
    cid = f"chk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection(token_url=idp.token_url("esc")))
    code, text = check(cid, kwargs=stack.backend_kwargs())
    assert code == 0
    assert_safe(text)
    assert "sub=\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mroot\\u202e" in text
    code, out = check(cid, "--json", kwargs=stack.backend_kwargs())
    assert_safe(out)
    shown = json.loads(out)["token"]["claims"]
    assert shown["sub"] == "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mroot\\u202e"  # escaped in the data, not just by JSON
    assert shown["scope"] == "read\\x9bwrite" and shown["aud"][1] == "\\x1b[8mhidden"


def test_escape_sequences_in_gateway_headers_are_escaped(
    stack: Stack, check: Check, hostile_gateway: tuple[str, int]
) -> None:
    host, port = hostile_gateway
    cid = f"chk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", {**stack.kong_connection(), "host": host, "port": port})
    for args in ((cid, "--probe"), (cid, "--probe", "--json")):
        code, out = check(*args, kwargs=stack.backend_kwargs())
        assert code == 0, out
        assert_safe(out)
        assert "\\x1b[2J99" in out and "gateway-title" in out


def test_error_text_from_peers_is_escaped(stack: Stack, check: Check, idp: AnsweringIdp) -> None:
    idp.answers["esc_err"] = json.dumps({"access_token": "x", "token_type": f"mac{HOSTILE}"}).encode()
    cid = f"chk_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection(token_url=idp.token_url("esc_err")))
    for args in ((cid,), (cid, "--json")):
        code, out = check(*args, kwargs=stack.backend_kwargs())
        assert code == 3 and "token_type" in out
        assert_safe(out)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:password@host", "redis://host:6379/0"),
        ("rediss://:pw@[::1]:6380/2?ssl_cert_reqs=none", "rediss://[::1]:6380/2"),
        ("redis://user:p'a\"ss@host:7000/3", "redis://host:7000/3"),
        ("https://user:pw@kong.example.com/x?apikey=zz#frag", "https://kong.example.com/x"),
        ("http://vault:8200", "http://vault:8200"),
    ],
)
def test_urls_are_shown_without_userinfo_or_query(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_urls_inside_free_text_lose_their_userinfo_and_query() -> None:
    text = "cannot reach https://u:sekrit@idp.example.com/token?client_secret=abc: refused\x1b[2J"
    assert scrub_text(text) == "cannot reach https://idp.example.com/token refused\\x1b[2J"
