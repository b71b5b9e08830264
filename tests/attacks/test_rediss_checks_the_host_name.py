"""Attack: a TLS Redis whose certificate names another host (a man in the middle with a certificate of the same CA).
``rediss://`` must refuse it whatever redis-py's defaults (5.x did not check host names) and whatever the URL's
query asks; the backend then mints locally with one WARNING, as when Redis is down. Against a real redis-server
listening with TLS only (Debian's build has TLS).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack import procs
from devstack.pki import CertificateAuthority
from devstack.redis import redis_server_binary
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.cache import redis as redis_cache
from kong_secrets_backend.cache.redis import RedisTokenCache
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")


@dataclass
class TlsRedis:
    port: int
    password: str
    ca: Path
    proc: procs.Proc

    def url(self, host: str, query: str = "") -> str:
        return f"rediss://:{self.password}@{host}:{self.port}/0?ssl_ca_certs={self.ca}{query}"

    def entries(self) -> list[bytes]:
        import redis

        with contextlib.closing(
            redis.Redis(host="127.0.0.1", port=self.port, password=self.password, ssl=True, ssl_ca_certs=str(self.ca))
        ) as client:
            return list(client.keys("*"))


def _pong(port: int, password: str, ca: Path) -> bool:
    import redis

    try:
        with contextlib.closing(
            redis.Redis(
                host="127.0.0.1",
                port=port,
                password=password,
                ssl=True,
                ssl_ca_certs=str(ca),
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
        ) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """redis-server with TLS only, on 127.0.0.1 and 127.0.0.2; its certificate names localhost and 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("tls-redis")
    ca = CertificateAuthority(workdir, name="redis")
    cert = ca.issue("redis", server=True)
    port, password = procs.free_port(), f"redis-tls-pw-{secrets.token_hex(12)}"
    LEAKS.plant(password)
    config = workdir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1 127.0.0.2",
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {cert.cert}",
                f"tls-key-file {cert.key}",
                f"tls-ca-cert-file {ca.cert_path}",
                "tls-auth-clients no",
                'save ""',
                "appendonly no",
                f"dir {workdir}",
                f"requirepass {password}",
                "",
            ]
        )
    )
    config.chmod(0o600)
    proc = procs.start(
        "redis-tls",
        [redis_server_binary(), str(config)],
        log_dir=workdir,
        ready=lambda: _pong(port, password, ca.cert_path),
        timeout=15,
    )
    try:
        yield TlsRedis(port=port, password=password, ca=ca.cert_path, proc=proc)
    finally:
        proc.stop()


def test_the_client_is_always_built_to_check_the_certificate_and_the_host_name() -> None:
    """Client construction, whatever redis-py's version defaults to and whatever the URL's query says."""
    url = "rediss://:pw@redis.example.com:6380/0?ssl_check_hostname=false&ssl_cert_reqs=none"
    client: Any = redis_cache._connect(url)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_check_hostname"] is True and kwargs["ssl_cert_reqs"] == "required"
    connection = client.connection_pool.make_connection()
    assert connection.check_hostname is True and connection.cert_reqs == ssl.CERT_REQUIRED
    plain: Any = redis_cache._connect("redis://:pw@redis.example.com:6379/0")
    assert "ssl_check_hostname" not in plain.connection_pool.connection_kwargs


def test_the_right_host_name_is_accepted(tls_redis: TlsRedis) -> None:
    from kong_secrets_backend.tokens import Token

    cache = RedisTokenCache(tls_redis.url("127.0.0.1"))
    token = Token(value="token-over-tls-redis", issued_at=0, expires_at=9e9)
    cache.put("cc:tls", b"cc:tls\0secret", token)
    assert cache.get("cc:tls", b"cc:tls\0secret") is not None
    assert any(b":token:" in k for k in tls_redis.entries())


@pytest.mark.parametrize("query", ["", "&ssl_check_hostname=false", "&ssl_cert_reqs=none"])
def test_a_certificate_naming_another_host_is_refused_and_tokens_are_minted_locally(
    stack: Stack, tls_redis: TlsRedis, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    for key in tls_redis.entries():  # start empty: whatever is there came from another test
        assert b":token:" in key or b":lock:" in key
    before = set(tls_redis.entries())
    conn_id = f"rediss_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{conn_id}", stack.kong_connection())
    url = tls_redis.url("127.0.0.2", query)  # the certificate says localhost / 127.0.0.1
    backend = KongSecretsBackend(**stack.backend_kwargs(token_cache=url))
    backend._set_connection_class(Connection)
    with caplog.at_level(logging.DEBUG):
        assert backend.get_connection(conn_id) is not None  # minted locally
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()]
    assert len(warnings) == 1 and "minting tokens locally" in warnings[0]
    assert "rediss://127.0.0.2:" in warnings[0]
    assert set(tls_redis.entries()) == before  # nothing was written through the impostor's name
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), tls_redis.password])
