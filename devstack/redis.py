"""A real local redis-server (Debian's ``redis-server``) for the fleet token cache: free port, no persistence.

`start_redis(workdir)` starts it on 127.0.0.1 with a random password (so that tests can scan for it) and
returns a `Redis` handle; `stop()` ends it by PID, `kill()` kills it at once (an outage, mid-run).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import procs
from devstack.procs import Proc

HTTP_TIMEOUT = 2.0


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server not found on PATH; install Debian's redis-server (scripts/bootstrap does)")
    return path


@dataclass
class Redis:
    host: str
    port: int
    password: str = field(repr=False)
    proc: Proc

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0``: what a user puts in ``token_cache``."""
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_timeout=HTTP_TIMEOUT,
            socket_connect_timeout=1,
        )

    def flush(self) -> None:
        with contextlib.closing(self.client()) as c:
            c.flushall()

    def keys(self) -> list[bytes]:
        with contextlib.closing(self.client()) as c:
            return list(c.keys("*"))

    def command_count(self) -> int:
        """Commands the server has run since start / the last `reset_stats()` (INFO/CONFIG calls excluded)."""
        with contextlib.closing(self.client()) as c:
            stats = c.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))

    def reset_stats(self) -> None:
        with contextlib.closing(self.client()) as c:
            c.config_resetstat()

    def kill(self) -> None:
        """SIGKILL, as an outage would: no goodbye to connected clients."""
        import os
        import signal

        if self.proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.popen.wait(timeout=5)

    def alive(self) -> bool:
        return self.proc.alive()

    def stop(self) -> None:
        self.proc.stop()


def _pong(host: str, port: int, password: str) -> bool:
    import redis

    try:
        with contextlib.closing(
            redis.Redis(host=host, port=port, password=password, socket_timeout=0.5, socket_connect_timeout=0.5)
        ) as c:
            return bool(c.ping())
    except redis.RedisError:
        return False


def start_redis(workdir: Path, *, password: str | None = None, port: int | None = None, timeout: float = 15.0) -> Redis:
    """redis-server on a free loopback port: no RDB/AOF persistence, a password, logs in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    host, port = "127.0.0.1", port or procs.free_port()
    password = password or f"redis-pw-{secrets.token_hex(12)}"
    config = workdir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                f"bind {host}",
                f"port {port}",
                'save ""',
                "appendonly no",
                f"dir {workdir}",
                "daemonize no",
                "protected-mode yes",
                f"requirepass {password}",
                "",
            ]
        )
    )
    config.chmod(0o600)
    proc = procs.start(
        "redis",
        [redis_server_binary(), str(config)],
        log_dir=workdir,
        ready=lambda: _pong(host, port, password),
        timeout=timeout,
    )
    return Redis(host=host, port=port, password=password, proc=proc)
