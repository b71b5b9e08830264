"""Run `airflow dags test` against a throwaway AIRFLOW_HOME, the way a user's worker would meet the backend.

`prepare_airflow()` builds a fresh home (own sqlite DB, no examples, the given secrets backend) and the full
environment for Airflow subprocesses; `dags_test()` runs one DAG and returns everything it printed.

Findings for Airflow 3.3 that shape this module:

* A fresh home needs ``airflow db migrate`` (``dags test`` otherwise stops with "Database migration required").
  Migrating costs ~5 s, so it is done once per process into a template directory and each home gets a copy
  of the migrated sqlite file.
* ``dags test`` (without ``--use-executor``) runs every task in-process, against an in-process Execution API:
  the task log is written by structlog to the command's stdout, and no task log file is created under
  ``$AIRFLOW_HOME/logs``. `all_output()` still reads every file that appears under that folder during the run,
  so nothing is missed if that changes (e.g. with an executor).
* The secrets backend is therefore built in the ``airflow`` CLI process itself, once for the task side
  (``[workers] secrets_backend``, which falls back to ``[secrets] backend``) and once for the in-process API
  server side.

The environment may carry secrets (a Vault token, an AppRole secret_id in ``backend_kwargs``): this module never
prints it, and neither `AirflowEnv` nor `DagRunResult` shows it in its repr.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO_ROOT / "examples" / "dags"

PARALLELISM = 2
MIGRATE_TIMEOUT = 180.0

# Inherited variables that would change what Airflow or the backend does; the caller's shell must not leak in.
_DROPPED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "_AIRFLOW")
_DROPPED_NAMES = frozenset({"AIRFLOW_HOME", "AIRFLOW_CONFIG", "VAULT_TOKEN", "VAULT_ADDR", "BAO_TOKEN", "BAO_ADDR"})


@dataclass
class AirflowEnv:
    """A prepared AIRFLOW_HOME and the full environment for Airflow subprocesses (may hold secrets)."""

    home: Path
    env: dict[str, str] = field(repr=False)

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


@dataclass
class DagRunResult:
    """What one `airflow dags test` printed and left behind. The repr shows states and timing, not output."""

    dag_id: str
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    duration: float
    timed_out: bool = False
    dag_run_state: str | None = None
    task_states: dict[str, str] = field(default_factory=dict)
    log_files: dict[str, str] = field(default_factory=dict, repr=False)  # path relative to AIRFLOW_HOME -> new text

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.dag_run_state == "success"

    @property
    def all_output(self) -> str:
        return all_output(self)


def all_output(result: DagRunResult) -> str:
    """stdout, stderr and every log file written during the run, as one text (for leak scans and diagnosis)."""
    parts = [f"=== stdout ===\n{result.stdout}", f"=== stderr ===\n{result.stderr}"]
    parts.extend(f"=== {name} ===\n{text}" for name, text in sorted(result.log_files.items()))
    return "\n".join(parts)


# Called with (where, text) for every run's combined output: the test suite's leak scan listens here.
OUTPUT_OBSERVERS: list[Callable[[str, str], None]] = []


# -- the migrated DB template, once per process ---------------------------------------------------------


_template_lock = threading.Lock()
_template_db: Path | None = None
_template_seconds = [0.0]


def airflow_bin() -> Path:
    """The `airflow` script of the running interpreter's environment (not resolved: a venv's python is a link)."""
    path = Path(sys.executable).parent / "airflow"
    if not path.exists():
        raise RuntimeError(f"no airflow executable next to {sys.executable}")
    return path


def _base_env(home: Path, dags_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED_NAMES}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__SECRETS__BACKEND": "",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": "{}",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
    )
    return env


def migrated_db_template() -> Path:
    """Path of a migrated, empty sqlite DB, made once per process by `airflow db migrate` (~5 s)."""
    global _template_db
    with _template_lock:
        if _template_db is not None and _template_db.exists():
            return _template_db
        home = Path(tempfile.mkdtemp(prefix="airflow-db-template-"))
        atexit.register(shutil.rmtree, home, True)
        env = _base_env(home, home / "dags")
        started = time.monotonic()
        proc = subprocess.run(
            [str(airflow_bin()), "db", "migrate"],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=MIGRATE_TIMEOUT,
        )
        if proc.returncode != 0:  # this env holds no secret: no backend kwargs, no extra_env
            raise RuntimeError(f"airflow db migrate failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
        db = home / "airflow.db"
        if not db.is_file():
            raise RuntimeError(f"airflow db migrate left no {db}")
        _template_db = db
        _template_seconds[0] = time.monotonic() - started
        return db


def template_migrate_seconds() -> float:
    """How long this process's one `airflow db migrate` took (0 if it has not run)."""
    return _template_seconds[0]


# -- public API -----------------------------------------------------------------------------------------


def prepare_airflow(
    workdir: Path,
    *,
    backend: str,
    backend_kwargs: Mapping[str, Any],
    dags_folder: Path,
    extra_env: Mapping[str, str] | None = None,
) -> AirflowEnv:
    """Make ``workdir/airflow`` a ready AIRFLOW_HOME: migrated sqlite DB, no examples, the given secrets backend.

    An existing home there gets a fresh, empty DB. Inherited ``AIRFLOW_*`` and ``VAULT_*``/``BAO_*`` variables
    are dropped so that the caller's shell cannot change the run.

    ``backend`` is the ``[secrets] backend`` class path ("" for none); ``backend_kwargs`` is passed as JSON.
    ``extra_env`` is applied last (e.g. ``AIRFLOW_CONN_<ID>`` or ``AIRFLOW__LOGGING__LOGGING_LEVEL``).
    """
    home = Path(workdir).resolve() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    shutil.copyfile(migrated_db_template(), home / "airflow.db")
    env = _base_env(home, Path(dags_folder).resolve())
    env["AIRFLOW__SECRETS__BACKEND"] = backend
    env["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps(dict(backend_kwargs)) if backend else "{}"
    if extra_env:
        env.update(extra_env)
    return AirflowEnv(home=home, env=env)


def dags_test(af: AirflowEnv, dag_id: str, *, timeout: float = 180) -> DagRunResult:
    """Run ``airflow dags test <dag_id>`` in ``af``; never raises for a failed run (look at ``.ok``)."""
    before = _log_sizes(af.log_dir)
    started = time.monotonic()
    popen = subprocess.Popen(
        [str(airflow_bin()), "dags", "test", dag_id],
        env=af.env,
        cwd=af.home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        stdout, stderr = popen.communicate()
    duration = time.monotonic() - started
    run_state, task_states = _states_from_db(af.db_path, dag_id)
    if run_state is None:
        run_state = _run_state_from_output(stdout + stderr)
    result = DagRunResult(
        dag_id=dag_id,
        returncode=popen.returncode,
        stdout=stdout,
        stderr=stderr,
        duration=duration,
        timed_out=timed_out,
        dag_run_state=run_state,
        task_states=task_states,
        log_files=_new_log_text(af.home, af.log_dir, before),
    )
    for observe in OUTPUT_OBSERVERS:
        observe(f"airflow dags test {dag_id}", result.all_output)
    return result


# -- helpers --------------------------------------------------------------------------------------------


def _log_sizes(log_dir: Path) -> dict[Path, int]:
    if not log_dir.is_dir():
        return {}
    return {p: p.stat().st_size for p in log_dir.rglob("*") if p.is_file()}


def _new_log_text(home: Path, log_dir: Path, before: Mapping[Path, int]) -> dict[str, str]:
    """What was appended to (or created under) log_dir since `before` was taken."""
    out: dict[str, str] = {}
    for path, size in _log_sizes(log_dir).items():
        start = before.get(path, 0)
        if size <= start:
            continue
        with path.open("rb") as fh:
            fh.seek(start)
            out[str(path.relative_to(home))] = fh.read().decode("utf-8", errors="replace")
    return out


def _states_from_db(db: Path, dag_id: str) -> tuple[str | None, dict[str, str]]:
    """State of the newest run of dag_id and of its task instances, read from the home's sqlite DB."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if row is None:
                return None, {}
            run_id, run_state = row
            tasks = conn.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
    except sqlite3.Error:
        return None, {}
    states = {(t if m < 0 else f"{t}[{m}]"): str(s) for t, m, s in tasks}
    return (str(run_state) if run_state is not None else None), states


_RUN_FINISHED = re.compile(r"DagRun Finished: .*?\bstate=(\w+)")


def _run_state_from_output(text: str) -> str | None:
    found = _RUN_FINISHED.findall(text)
    return found[-1] if found else None


__all__ = [
    "EXAMPLE_DAGS",
    "AirflowEnv",
    "DagRunResult",
    "airflow_bin",
    "all_output",
    "dags_test",
    "migrated_db_template",
    "prepare_airflow",
    "template_migrate_seconds",
]
