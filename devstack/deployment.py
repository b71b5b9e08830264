"""A real local Airflow deployment: api-server, scheduler, dag-processor, triggerer, and an executor's workers.

`start_deployment(stack, tmp, ...)` starts the components the way an operator runs Airflow (not ``airflow dags
test``): the scheduler hands each task to an executor, every task runs in its own process under a supervisor and
talks to the API server through the Execution API, deferred tasks wait in the triggerer. DAG runs are created
with ``airflow dags trigger``.

* ``executor="local"``: LocalExecutor; the scheduler's worker processes run the tasks on one "host".
* ``executor="celery"``: CeleryExecutor with a Redis broker (devstack/redis.py) and two ``airflow celery worker``
  processes, each with its own HOME, XDG_CACHE_HOME and TMPDIR (two hosts as far as a per-host token cache is
  concerned). `host_name` is the ``[core] hostname_callable`` of every component, so that a task instance's
  ``hostname`` says which worker ran it.

One AIRFLOW_HOME under ``tmp`` with its own sqlite DB (a copy of the DB that ``airflow db migrate`` made once per
process: devstack/airflow.py) and DAGs folder (copies of the given DAG files); the api-server, scheduler,
dag-processor and triggerer share one more "host" (HOME, XDG_CACHE_HOME, TMPDIR under ``tmp/hosts``), so no
caller's ``~/.cache`` is used. Every server listens on 127.0.0.1 only (the API server on a free port; log servers
are skipped); every process is started in its own process group and stopped by PID (devstack/procs.py), and the
components get exactly the prepared environment (none of the caller's AIRFLOW_* or VAULT_* variables).

The environment holds the backend kwargs (an AppRole secret_id) and the deployment's own keys: nothing here prints
it, and no object shows it in its repr.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from devstack import procs
from devstack.airflow import OUTPUT_OBSERVERS, REPO_ROOT, airflow_bin, prepare_airflow
from devstack.procs import Proc

if TYPE_CHECKING:
    from devstack.redis import Redis
    from devstack.stack import Stack

BACKEND_CLASS = "kong_secrets_backend.KongSecretsBackend"
HOST_ENV = "DEVSTACK_HOST"  # what `host_name` returns in a process: the "host" it stands for
HOSTNAME_CALLABLE = "devstack.deployment.host_name"
SCHEDULER_HOST = "airflow-main"
CELERY_WORKERS = ("worker-a", "worker-b")
CELERY_CONCURRENCY = 4
LOCAL_PARALLELISM = 8
START_TIMEOUT = 120.0
CLI_TIMEOUT = 120.0
FINISHED = frozenset({"success", "failed"})

Executor = Literal["local", "celery"]
SecretsSection = Literal["workers", "secrets"]


def host_name() -> str:
    """``[core] hostname_callable`` of the deployment: the host a process stands for (``$DEVSTACK_HOST``)."""
    return os.environ.get(HOST_ENV) or socket.getfqdn()


@dataclass(frozen=True)
class TaskRecord:
    """One task instance of a run, as the metadata DB has it."""

    task_id: str
    map_index: int
    state: str | None
    hostname: str
    try_number: int
    pid: int | None
    start_date: datetime | None
    end_date: datetime | None


@dataclass(frozen=True)
class RunResult:
    """The final state of a DAG run and of each of its task instances."""

    dag_id: str
    run_id: str
    state: str | None
    tasks: dict[str, TaskRecord]
    seconds: float  # from trigger() to the final state
    trace_id: str | None = None  # of the run's span (dag_run.context_carrier's traceparent), 32 hex digits

    @property
    def ok(self) -> bool:
        return self.state == "success"

    @property
    def task_states(self) -> dict[str, str | None]:
        return {key: t.state for key, t in self.tasks.items()}

    @property
    def hosts(self) -> dict[str, str]:
        """task -> the hostname of the worker that ran it."""
        return {key: t.hostname for key, t in self.tasks.items()}

    def max_concurrency(self) -> int:
        """The largest number of task instances that were running at the same moment."""
        edges: list[tuple[datetime, int]] = []
        for t in self.tasks.values():
            if t.start_date and t.end_date:
                edges += [(t.start_date, 1), (t.end_date, -1)]
        running = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            running += step
            peak = max(peak, running)
        return peak


@dataclass
class Deployment:
    """A running deployment; use as a context manager or call `stop()`. Holds secrets only in `env` (no repr)."""

    workdir: Path
    home: Path
    executor: Executor
    api_url: str
    env: dict[str, str] = field(repr=False)
    components: dict[str, Proc] = field(default_factory=dict, repr=False)
    redis: Redis | None = field(default=None, repr=False)
    host_homes: dict[str, Path] = field(default_factory=dict)
    startup_seconds: float = 0.0
    stop_seconds: float = 0.0
    stop_times: dict[str, float] = field(default_factory=dict)  # component -> seconds until it had exited
    planted: list[str] = field(default_factory=list, repr=False)  # the deployment's own secrets
    _stopped: bool = field(default=False, repr=False)
    _triggered: dict[str, float] = field(default_factory=dict, repr=False)  # run_id -> when trigger() began

    # -- DAG runs ----------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """``airflow dags trigger`` a new run of dag_id (waits until the DAG is parsed); returns its run_id."""
        self.wait_for_dags([dag_id])
        asked = time.monotonic()
        run_id = f"deploy__{time.strftime('%H%M%S')}_{uuid.uuid4().hex[:8]}"
        argv = [str(airflow_bin()), "dags", "trigger", dag_id, "--run-id", run_id]
        if conf is not None:
            argv += ["--conf", json.dumps(dict(conf))]
        done = self._cli(argv)
        if done.returncode != 0:
            raise RuntimeError(f"airflow dags trigger {dag_id} failed ({done.returncode}):\n{done.stdout[-3000:]}")
        self._triggered[run_id] = asked
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float = 120.0) -> RunResult:
        """Poll the metadata DB until the run is finished (or timeout: the result then has the state it had)."""
        started = self._triggered.get(run_id, time.monotonic())
        deadline = time.monotonic() + timeout
        state: str | None = None
        while True:
            state, tasks = self._read_run(dag_id, run_id)
            if state in FINISHED or time.monotonic() > deadline:
                break
            self._check_alive()
            time.sleep(0.5)
        seconds = time.monotonic() - started
        return RunResult(dag_id, run_id, state, tasks, seconds, self._read_trace_id(dag_id, run_id))

    def run(self, dag_id: str, conf: Mapping[str, Any] | None = None, timeout: float = 120.0) -> RunResult:
        return self.wait(dag_id, self.trigger(dag_id, conf), timeout)

    def task_logs(self, dag_id: str, run_id: str) -> str:
        """Every log file of the run's task instances (task attempts and their trigger logs), one text."""
        run_dir = self.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}"
        return _read_tree(run_dir, self.home)

    def task_log_files(self, dag_id: str, run_id: str) -> dict[str, str]:
        run_dir = self.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}"
        return {str(p.relative_to(run_dir)): _read(p) for p in sorted(run_dir.rglob("*")) if p.is_file()}

    def log_events(self, dag_id: str, run_id: str, logger: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Log file of the run (``task_id=t/attempt=1.log``, a trigger's ``...log.trigger.<id>.log``) -> its
        structured entries (task logs are JSON lines), oldest first; only those of `logger` if given."""
        found: dict[str, list[dict[str, Any]]] = {}
        for name, text in self.task_log_files(dag_id, run_id).items():
            entries = found.setdefault(name, [])
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and (logger is None or entry.get("logger") == logger):
                    entries.append(entry)
        return found

    def component_logs(self) -> str:
        """What every component printed (api-server, scheduler, ...) and every file under the logs folder."""
        parts = [f"=== {name} ===\n{proc.log_text()}" for name, proc in self.components.items()]
        if self.redis is not None:
            parts.append(f"=== redis ===\n{self.redis.proc.log_text()}")
        parts.append(_read_tree(self.log_dir, self.home))
        return "\n".join(parts)

    # -- state -------------------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 60.0) -> None:
        """Until every dag_id is serialized by the dag-processor and not paused."""
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while missing:
            rows = self._query(
                "SELECT d.dag_id FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id WHERE d.is_paused = 0"
            )
            missing -= {r[0] for r in rows}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs not parsed after {timeout:.0f}s: {sorted(missing)}\n{self._tail()}")
            self._check_alive()
            time.sleep(0.3)

    def wait_for_files(self, timeout: float = 60.0) -> None:
        """Until the dag-processor has parsed every file of the DAGs folder: its DAGs are serialized and unpaused.
        A file that fails to import raises with its import error."""
        deadline = time.monotonic() + timeout
        files = {p.name for p in (self.workdir / "dags").glob("*.py")}
        while True:
            errors = self._query("SELECT filename, stacktrace FROM import_error")
            if errors:
                raise RuntimeError("DAG import errors:\n" + "\n".join(f"{f}: {e}" for f, e in errors))
            rows = self._query(
                "SELECT d.relative_fileloc FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id "
                "WHERE d.is_paused = 0 AND d.is_stale = 0"
            )
            missing = files - {Path(r[0]).name for r in rows if r[0]}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAG files not parsed after {timeout:.0f}s: {sorted(missing)}\n{self._tail()}")
            self._check_alive()
            time.sleep(0.3)

    def listening_addresses(self) -> dict[str, list[str]]:
        """component -> the addresses its processes (and their children) listen on: 'host:port'."""
        import psutil

        out: dict[str, list[str]] = {}
        for name, proc in self.components.items():
            found: set[str] = set()
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(proc.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        for c in p.net_connections(kind="inet"):
                            if c.status == psutil.CONN_LISTEN:
                                found.add(f"{c.laddr.ip}:{c.laddr.port}")
            out[name] = sorted(found)
        return out

    # -- lifecycle ---------------------------------------------------------------------------------------

    def stop(self, timeout: float = 6.0) -> None:
        """Stop every component by PID: SIGTERM to each process group at once, SIGKILL to what is left after
        `timeout`; then hand all logs to the suite's output observers (the leak scan)."""
        if self._stopped:
            return
        self._stopped = True
        running = [p for p in self.components.values() if p.alive()]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        began = time.monotonic()
        waiting = list(running)
        while waiting and time.monotonic() < began + timeout:
            for proc in [p for p in waiting if p.popen.poll() is not None]:
                self.stop_times[proc.name] = round(time.monotonic() - began, 1)
                waiting.remove(proc)
            time.sleep(0.05)
        for proc in waiting:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)
        for proc in running:  # a group's other members (task processes, pool workers) must not outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.stop()
        self.stop_seconds = time.monotonic() - began
        text = self.component_logs()
        for observe in OUTPUT_OBSERVERS:
            observe(f"deployment {self.executor} {self.workdir.name}", text)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------------------

    def _cli(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env=self.env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=CLI_TIMEOUT,
        )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        for _ in range(20):
            try:
                with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)) as c:
                    return c.execute(sql, tuple(params)).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.1)
        return []

    def _read_run(self, dag_id: str, run_id: str) -> tuple[str | None, dict[str, TaskRecord]]:
        row = self._query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        if not row:
            return None, {}
        rows = self._query(
            "SELECT task_id, map_index, state, hostname, try_number, pid, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        tasks = {}
        for task_id, map_index, state, hostname, try_number, pid, start, end in rows:
            key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            tasks[key] = TaskRecord(
                task_id, map_index, state, hostname or "", try_number or 0, pid, _timestamp(start), _timestamp(end)
            )
        return (str(row[0][0]) if row[0][0] is not None else None), tasks

    def _read_trace_id(self, dag_id: str, run_id: str) -> str | None:
        """The trace id of the run's span: Airflow keeps its W3C traceparent in dag_run.context_carrier."""
        row = self._query("SELECT context_carrier FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        match = re.search(r"\b00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\b", str(row[0][0])) if row else None
        return match.group(1) if match else None

    def _check_alive(self) -> None:
        dead = [name for name, proc in self.components.items() if not proc.alive()]
        if dead:
            raise RuntimeError(f"deployment component(s) exited: {dead}\n{self._tail(dead)}")

    def _tail(self, names: Sequence[str] | None = None, size: int = 3000) -> str:
        chosen = names or list(self.components)
        return "\n".join(f"--- {n} ---\n{self.components[n].log_text()[-size:]}" for n in chosen)


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    text = str(value).replace(" ", "T")
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text)
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _read_tree(root: Path, relative_to: Path) -> str:
    if not root.is_dir():
        return ""
    return "\n".join(
        f"=== {p.relative_to(relative_to)} ===\n{_read(p)}" for p in sorted(root.rglob("*")) if p.is_file()
    )


def _host_dirs(root: Path, host: str) -> dict[str, str]:
    """HOME, XDG_CACHE_HOME and TMPDIR of one "host", as separate directories."""
    base = root / "hosts" / host
    dirs = {"HOME": base / "home", "XDG_CACHE_HOME": base / "home" / ".cache", "TMPDIR": base / "tmp"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {name: str(d) for name, d in dirs.items()} | {HOST_ENV: host}


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _copy_dags(dags_folder: Path, dags: Sequence[Path]) -> None:
    dags_folder.mkdir(parents=True, exist_ok=True)
    for dag in dags:
        source = Path(dag).resolve()
        if not source.is_file():
            raise FileNotFoundError(source)
        (dags_folder / source.name).write_bytes(source.read_bytes())


def deployment_env(
    home_env: Mapping[str, str], *, api_port: int, executor: Executor, jwt_secret: str, api_secret: str
) -> dict[str, str]:
    """The configuration every component shares (as AIRFLOW__* variables): fast loops, loopback servers."""
    env = dict(home_env)
    pythonpath = [str(REPO_ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    api_base = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if executor == "local" else "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(LOCAL_PARALLELISM),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_base}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api_base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": api_secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(procs.free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(procs.free_port()),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        }
    )
    return env


def _job_running(dep: Deployment, job_type: str) -> bool:
    rows = dep._query("SELECT count(*) FROM job WHERE job_type = ? AND state = 'running'", (job_type,))
    return bool(rows and rows[0][0])


def _celery_ready(proc: Proc) -> bool:
    return " ready." in proc.log_text()


def start_deployment(
    stack: Stack,
    tmp: Path,
    *,
    executor: Executor = "local",
    secrets_section: SecretsSection = "workers",
    backend_kwargs: Mapping[str, Any] | None = None,
    dags: Sequence[Path] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Deployment:
    """Start a deployment using KongSecretsBackend on the stack's Vault; returns when every component is up and
    every DAG in `dags` is parsed and unpaused.

    ``secrets_section``: ``"workers"`` sets ``[workers] secrets_backend`` / ``secrets_backend_kwargs`` only (the API
    server has no backend); ``"secrets"`` sets ``[secrets] backend`` / ``backend_kwargs`` only (task processes fall
    back to it). ``backend_kwargs`` defaults to `Stack.backend_kwargs()` (AppRole login). ``extra_env`` is applied
    last to every component (e.g. logging levels).
    """
    from devstack.redis import start_redis

    started = time.monotonic()
    workdir = Path(tmp).resolve()
    kwargs = json.dumps(dict(backend_kwargs if backend_kwargs is not None else stack.backend_kwargs()))
    dags_folder = workdir / "dags"
    _copy_dags(dags_folder, dags)
    af = prepare_airflow(workdir, backend="", backend_kwargs={}, dags_folder=dags_folder)
    (af.home / "airflow.cfg").write_text("# configured by AIRFLOW__* variables (devstack/deployment.py)\n")
    api_port = procs.free_port()
    jwt_secret, api_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = deployment_env(af.env, api_port=api_port, executor=executor, jwt_secret=jwt_secret, api_secret=api_secret)
    if secrets_section == "workers":
        env |= {"AIRFLOW__WORKERS__SECRETS_BACKEND": BACKEND_CLASS, "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": kwargs}
        env |= {"AIRFLOW__SECRETS__BACKEND": "", "AIRFLOW__SECRETS__BACKEND_KWARGS": "{}"}
    else:
        env |= {"AIRFLOW__SECRETS__BACKEND": BACKEND_CLASS, "AIRFLOW__SECRETS__BACKEND_KWARGS": kwargs}
        env |= {"AIRFLOW__WORKERS__SECRETS_BACKEND": "", "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": ""}
    env |= _host_dirs(workdir, SCHEDULER_HOST)
    dep = Deployment(
        workdir=workdir,
        home=af.home,
        executor=executor,
        api_url=f"http://127.0.0.1:{api_port}",
        env=env,
        planted=[jwt_secret, api_secret, env["AIRFLOW__CORE__FERNET_KEY"]],
    )
    dep.host_homes[SCHEDULER_HOST] = Path(env["HOME"])
    try:
        if executor == "celery":
            dep.redis = start_redis(workdir / "redis")
            dep.planted.append(dep.redis.password)
            base = f"redis://:{dep.redis.password}@{dep.redis.host}:{dep.redis.port}"
            env |= {
                "AIRFLOW__CELERY__BROKER_URL": f"{base}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"{base}/1",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_CONCURRENCY),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            }
        if extra_env:
            env |= dict(extra_env)
        airflow = str(airflow_bin())
        logs = workdir / "components"

        def launch(name: str, argv: list[str], proc_env: Mapping[str, str] | None = None) -> None:
            dep.components[name] = procs.start(
                name,
                [airflow, *argv],
                log_dir=logs,
                ready=lambda: True,  # all start at once; readiness is checked below, together
                env=proc_env or env,
                inherit_env=False,  # env is complete: the caller's AIRFLOW_*/VAULT_* variables stay out
                cwd=af.home,
            )

        launch("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"])
        launch("scheduler", ["scheduler", "--skip-serve-logs"])
        launch("dag-processor", ["dag-processor"])
        launch("triggerer", ["triggerer", "--skip-serve-logs"])
        if executor == "celery":
            for host in CELERY_WORKERS:
                worker_env = env | _host_dirs(workdir, host)
                dep.host_homes[host] = Path(worker_env["HOME"])
                launch(
                    f"celery-{host}",
                    [
                        "celery",
                        "worker",
                        "--celery-hostname",
                        f"{host}@deployment",
                        "--concurrency",
                        str(CELERY_CONCURRENCY),
                        "--skip-serve-logs",
                        "--without-mingle",
                        "--without-gossip",
                    ],
                    worker_env,
                )
        deadline = time.monotonic() + timeout
        checks = {
            "api-server": lambda: procs.http_ok(f"{dep.api_url}/api/v2/monitor/health"),
            "scheduler": lambda: _job_running(dep, "SchedulerJob"),
            "dag-processor": lambda: _job_running(dep, "DagProcessorJob"),
            "triggerer": lambda: _job_running(dep, "TriggererJob"),
            **{f"celery-{h}": (lambda h=h: _celery_ready(dep.components[f"celery-{h}"])) for h in CELERY_WORKERS},
        }
        waiting = [n for n in checks if n in dep.components]
        while waiting:
            dep._check_alive()
            waiting = [n for n in waiting if not checks[n]()]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {waiting}\n{dep._tail(waiting)}")
            time.sleep(0.3)
        dep.wait_for_files(timeout=max(5.0, deadline - time.monotonic()))
    except BaseException:
        dep.stop()
        raise
    dep.startup_seconds = time.monotonic() - started
    return dep


@contextlib.contextmanager
def running_deployment(stack: Stack, tmp: Path, **kwargs: Any) -> Iterator[Deployment]:
    dep = start_deployment(stack, tmp, **kwargs)
    try:
        yield dep
    finally:
        dep.stop()


__all__ = [
    "CELERY_WORKERS",
    "Deployment",
    "RunResult",
    "TaskRecord",
    "host_name",
    "running_deployment",
    "start_deployment",
]
