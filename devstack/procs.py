"""Start and stop local servers: free ports, readiness polling, stop by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers at all with a status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


@dataclass
class Proc:
    """A server process we started; `stop()` kills it (and its process group) by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
    inherit_env: bool = True,
) -> Proc:
    """Start argv in its own process group, logging to log_dir/<name>.log; wait until ready() is true.

    `env` is added to this process's environment, or with ``inherit_env=False`` is the whole environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ) if inherit_env else {}
    if env:
        full_env.update(env)
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    popen = subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=str(cwd) if cwd else None,
        start_new_session=True,
    )
    log.close()
    proc = Proc(name=name, popen=popen, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{name} exited with {popen.returncode} before it was ready:\n{proc.log_text()[-4000:]}")
        if ready():
            return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{name} was not ready after {timeout:.0f}s:\n{proc.log_text()[-4000:]}")
