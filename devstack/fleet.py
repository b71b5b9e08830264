"""Task processes, as Airflow runs them: P processes, each building the backend and resolving R times.

A *zygote* (``python -m devstack.fleet``) imports Airflow and the backend once (a few seconds), then for
each run forks one child per task process, the way Celery's prefork pool does; a child starts with an
empty token cache and no Vault login, like a new task process or pod. Children start together, so cold
resolutions race, and each reports what it got (token digests, never tokens), its failures and its log.

Hosts are simulated by giving processes separate cache directories (``XDG_CACHE_HOME``) and, being
separate processes, separate memory.

    with Fleet() as fleet:
        run = fleet.run([Task(kwargs)] * 20, [Resolve("kong_orders", 5)])
        run.failures, run.distinct_tokens

Used by tests/integration/test_token_cache_fleet.py and benchmarks/token_economy.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Task:
    """One task process: the backend kwargs it is configured with and extra environment (e.g. XDG_CACHE_HOME)."""

    kwargs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolve:
    conn_id: str
    times: int = 1
    pause: float = 0.0  # seconds between resolutions


@dataclass(frozen=True)
class Barrier:
    """Each child waits here until the test calls ``RunHandle.release(name)``."""

    name: str


@dataclass
class ChildResult:
    index: int
    pid: int
    ok: int
    failed: int
    errors: list[str]
    tokens: list[str]  # sha256 prefixes of the Authorization values, in order
    logs: list[dict[str, str]]
    mints: int
    seconds: float


@dataclass
class FleetRun:
    results: list[ChildResult]
    seconds: float

    @property
    def failures(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def resolutions(self) -> int:
        return sum(r.ok + r.failed for r in self.results)

    @property
    def distinct_tokens(self) -> set[str]:
        return {t for r in self.results for t in r.tokens}

    @property
    def mints(self) -> int:
        return sum(r.mints for r in self.results)

    def log_text(self) -> str:
        return "\n".join(f"{rec['level']} {rec['name']}: {rec['message']}" for r in self.results for rec in r.logs)

    def errors(self) -> list[str]:
        return [e for r in self.results for e in r.errors]


class RunHandle:
    def __init__(self, fleet: Fleet, workdir: Path, processes: int) -> None:
        self._fleet = fleet
        self.workdir = workdir
        self.processes = processes

    def wait_barrier(self, name: str, timeout: float = 30.0) -> None:
        """Until every child has reached Barrier(name)."""
        folder = self.workdir / f"barrier-{name}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if folder.is_dir() and sum(1 for p in folder.iterdir() if p.name != "go") >= self.processes:
                return
            time.sleep(0.02)
        raise TimeoutError(f"not every child reached barrier {name!r} within {timeout:.0f}s")

    def release(self, name: str) -> None:
        folder = self.workdir / f"barrier-{name}"
        folder.mkdir(exist_ok=True)
        (folder / "go").touch()

    def result(self, timeout: float = 120.0) -> FleetRun:
        return self._fleet._reply(timeout)


class Fleet:
    """A zygote process; start it once, run many fleets from it."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        self._tmp = tempfile.TemporaryDirectory(prefix="ksb-fleet-")
        self.log_path = Path(self._tmp.name) / "zygote.log"
        with open(self.log_path, "w") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.fleet"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        self._runs = 0
        ready = self._reply(timeout)
        self.import_seconds = float(ready["import_seconds"])  # type: ignore[index]

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, tasks: list[Task], steps: list[Resolve | Barrier]) -> RunHandle:
        self._runs += 1
        workdir = Path(self._tmp.name) / f"run-{self._runs}"
        workdir.mkdir()
        command = {
            "workdir": str(workdir),
            "tasks": [asdict(t) for t in tasks],
            "steps": [{"kind": type(s).__name__, **asdict(s)} for s in steps],
        }
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return RunHandle(self, workdir, len(tasks))

    def run(self, tasks: list[Task], steps: list[Resolve | Barrier], timeout: float = 120.0) -> FleetRun:
        return self.start(tasks, steps).result(timeout)

    def _reply(self, timeout: float) -> Any:
        import selectors

        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.close()
                raise TimeoutError(f"the fleet zygote did not answer within {timeout:.0f}s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fleet zygote exited:\n{self.log_path.read_text(errors='replace')[-4000:]}")
        reply = json.loads(line)
        if "results" in reply:
            return FleetRun([ChildResult(**r) for r in reply["results"]], reply["seconds"])
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._tmp.cleanup()


# -- the zygote and its children ------------------------------------------------------------------------------


def _zygote() -> None:
    started = time.perf_counter()
    import logging

    # What a task process has imported before it resolves a connection (Airflow, the backend, their clients).
    import authlib.oauth2.auth  # noqa: F401
    import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    import filelock  # noqa: F401
    import hvac  # noqa: F401
    import redis  # noqa: F401
    import requests  # noqa: F401
    from airflow.sdk.definitions.connection import Connection  # noqa: F401

    import kong_secrets_backend.backend  # noqa: F401

    logging.getLogger().handlers.clear()
    _say({"import_seconds": time.perf_counter() - started})
    for line in sys.stdin:
        if line.strip():
            _say(_run(json.loads(line)))


def _run(command: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(command["workdir"])
    tasks, steps = command["tasks"], command["steps"]
    start_r, start_w = os.pipe()
    pids = []
    started = time.perf_counter()
    for index, task in enumerate(tasks):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(start_w)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)  # stdout is the zygote's reply channel: nothing else may write to it
                _child(index, task, steps, workdir, start_r)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(start_r)
    os.write(start_w, b"x" * len(tasks))  # all children start at once: cold resolutions race
    os.close(start_w)
    for pid in pids:
        os.waitpid(pid, 0)
    seconds = time.perf_counter() - started
    results = []
    for index in range(len(tasks)):
        path = workdir / f"child-{index}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
        else:
            results.append(_child_result(index, 0, 0, 1, ["child died without a result"], [], [], 0, 0.0))
    return {"results": results, "seconds": seconds}


def _child(index: int, task: dict[str, Any], steps: list[dict[str, Any]], workdir: Path, start_fd: int) -> None:
    import logging

    from airflow.sdk.definitions.connection import Connection

    from kong_secrets_backend import KongSecretsBackend

    os.environ.update(task["env"])
    records: list[dict[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append({"level": record.levelname, "name": record.name, "message": record.getMessage()})

    logger = logging.getLogger("kong_secrets_backend")
    logger.addHandler(Collect(level=logging.INFO))
    logger.setLevel(logging.INFO)
    os.read(start_fd, 1)
    os.close(start_fd)
    started = time.perf_counter()
    backend = KongSecretsBackend(**task["kwargs"])
    backend._set_connection_class(Connection)
    ok = failed = 0
    errors: list[str] = []
    tokens: list[str] = []
    for step in steps:
        if step["kind"] == "Barrier":
            folder = workdir / f"barrier-{step['name']}"
            folder.mkdir(exist_ok=True)
            (folder / str(os.getpid())).touch()
            deadline = time.monotonic() + 60
            while not (folder / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            continue
        for n in range(step["times"]):
            if n and step["pause"]:
                time.sleep(step["pause"])
            try:
                conn = backend.get_connection(step["conn_id"])
                header = conn.extra_dejson["Authorization"] if conn is not None else None
                if header is None:
                    raise LookupError("no connection or no Authorization header")
                tokens.append(hashlib.sha256(header.encode()).hexdigest()[:16])
                ok += 1
            except Exception as exc:
                failed += 1
                errors.append(f"{type(exc).__name__}: {exc}")
    from kong_secrets_backend.state import PROCESS

    runtimes = [PROCESS.runtimes.get(fingerprint) for fingerprint in PROCESS.runtimes]
    mints = sum(rt.broker.mints for rt in runtimes if rt is not None)
    result = _child_result(
        index, os.getpid(), ok, failed, errors, tokens, records, mints, time.perf_counter() - started
    )
    tmp = workdir / f".child-{index}.json"
    tmp.write_text(json.dumps(result))
    tmp.rename(workdir / f"child-{index}.json")


def _child_result(
    index: int,
    pid: int,
    ok: int,
    failed: int,
    errors: list[str],
    tokens: list[str],
    logs: list[dict[str, str]],
    mints: int,
    seconds: float,
) -> dict[str, Any]:
    return {
        "index": index,
        "pid": pid,
        "ok": ok,
        "failed": failed,
        "errors": errors,
        "tokens": tokens,
        "logs": logs,
        "mints": mints,
        "seconds": seconds,
    }


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _zygote()
