"""Triggerer soak: does a long-lived triggerer stay as fast and as small as a new one? (issue 13)

A benchmark run, not a test. It starts the real local stack (OpenBao, the IdP, the gateway) and a real Airflow
deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor; devstack/deployment.py), stores a
Kong connection ``kong_blink`` whose IdP client (``airflow-blink``) issues tokens that live 5 s, and runs for
``--minutes`` a DAG scheduled every ``--interval`` seconds (up to three runs at once) of ``--tasks`` deferrable
``HttpOperator`` tasks. Each task defers to an ``HttpTrigger`` whose ``HttpAsyncHook`` resolves ``kong_blink``
in the triggerer, then waits ``--delay`` seconds for the API behind the gateway; the next run's triggers come
after the token has aged, so the triggerer keeps minting. (Paging with a ``pagination_function`` would make one
task defer again and again, but a deferrable ``HttpOperator`` cannot defer a second time on Airflow 3.3: it
passes the ``requests.Response`` of the first page in the trigger's kwargs, which Airflow cannot serialize.)

Sampled over time:

- the RSS and CPU time of the ``airflow triggerer`` processes (psutil): the main process (the supervisor,
  which receives every value the trigger runner masks through Airflow's ``MaskSecret`` message, answers it
  after registering it in its own masker, and redacts the runner's log lines) and the trigger runner subprocess
  (where the triggers, the backend and the backend's masker run);
- each resolution, from the trigger's own log: from "trigger ... starting" to the backend's audit record of
  the token it served (``kong_secrets_backend.audit``, event ``use``), so the creation of the hook, the Vault
  read and the mint (when due) and the masking of the token (the backend's ``mask`` calls);
- each trigger's overhead: from "trigger ... starting" to "Trigger fired event", minus the API's ``--delay``:
  the resolution, Airflow's own masking of the returned connection, the request through the gateway, and
  whatever the trigger waited for on the event loop;
- each mint: the backend's INFO line "minted a ... token for conn_id kong_blink in N ms".

The operator is given ``auth_type=aiohttp.BasicAuth`` (unused: the connection has no login) so that the task
processes do not resolve the connection themselves to guess an auth type: every resolution measured is the
triggerer's.

    .venv/bin/python benchmarks/triggerer_soak.py [--minutes 5] [--modes true,false] [--png PATH]
    .venv/bin/python benchmarks/triggerer_soak.py --load DIR/triggerer-soak-true.json DIR/triggerer-soak-false.json

``--modes`` lists the values of the backend kwarg ``fast_masking`` to run, one fresh deployment each, for the
same duration (at most 6 minutes each); ``--kwargs '{"traceparent": false}'`` adds backend kwargs. Prints a
markdown table per mode and writes docs/images/triggerer-soak.png; ``--save DIR`` keeps each mode's samples as
JSON, ``--load`` reports them again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PNG = ROOT / "docs" / "images" / "triggerer-soak.png"
CONN_ID = "kong_blink"
CLIENT = "airflow-blink"  # tokens live 5 s (devstack/stack.py)
DAG_ID = "kong_blink_soak"
MAX_ACTIVE_RUNS = 3
SAMPLE_EVERY = 5.0  # seconds between two RSS samples
LOGGING = {
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": (
        "kong_secrets_backend=INFO airflow.providers.common.compat.connection=DEBUG airflow.sdk.bases.hook=DEBUG"
    ),
}

DAG_TEMPLATE = '''"""Soak DAG (benchmarks/triggerer_soak.py): frequent runs of deferrable HttpOperator tasks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aiohttp import BasicAuth
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

with DAG(
    dag_id="{dag_id}",
    schedule=timedelta(seconds={interval}),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs={runs},
    max_active_tasks={tasks} * {runs},
    default_args={{"retries": 0}},
):
    for index in range({tasks}):
        HttpOperator(
            task_id=f"get_{{index}}",
            http_conn_id="{conn_id}",
            endpoint="/orders",
            method="GET",
            data={{"delay": {delay}}},
            auth_type=BasicAuth,
            deferrable=True,
        )
'''

STARTING = re.compile(r"^trigger .* starting$")
FIRED = "Trigger fired event"
MINT = re.compile(r"minted a \S+ token for (?:conn_id )?" + CONN_ID + r" in (\d+) ms")
AUDIT = "kong_secrets_backend.audit"


@dataclass
class Sample:
    t: float  # seconds since the soak began
    supervisor_mb: float
    runner_mb: float
    total_mb: float
    supervisor_cpu: float
    runner_cpu: float


@dataclass
class Run:
    fast_masking: bool
    minutes: float
    tasks: int
    delay: float
    interval: float
    kwargs: dict[str, Any] = field(default_factory=dict)  # backend kwargs besides fast_masking
    samples: list[Sample] = field(default_factory=list)
    resolutions: list[tuple[float, float]] = field(default_factory=list)  # (t, ms): trigger start -> token
    overheads: list[tuple[float, float]] = field(default_factory=list)  # (t, ms): start -> fired, minus delay
    mints: list[tuple[float, float]] = field(default_factory=list)  # (t, ms)
    idp_requests: int = 0
    dag_runs: int = 0
    task_states: dict[str, int] = field(default_factory=dict)  # state -> task instances, at the end
    startup_seconds: float = 0.0
    secrets_section: str = "workers"  # where the backend is configured; "secrets" reaches the supervisor too

    @property
    def label(self) -> str:
        return (
            f"fast_masking {str(self.fast_masking).lower()}"
            + "".join(f", {k} {json.dumps(v)}" for k, v in self.kwargs.items())
            + f", backend in [{self.secrets_section}]"
        )

    @staticmethod
    def from_json(data: dict[str, Any]) -> Run:
        run = Run(**{k: v for k, v in data.items() if k not in ("samples", "resolutions", "overheads", "mints")})
        run.samples = [Sample(**s) for s in data["samples"]]
        run.resolutions = [tuple(r) for r in data["resolutions"]]  # type: ignore[misc]
        run.overheads = [tuple(o) for o in data["overheads"]]  # type: ignore[misc]
        run.mints = [tuple(m) for m in data["mints"]]  # type: ignore[misc]
        return run


# -- sampling --------------------------------------------------------------------------------------------------


def triggerer_tree(pid: int) -> tuple[Any, list[Any]]:
    import psutil

    parent = psutil.Process(pid)
    return parent, parent.children(recursive=True)


def sample(pid: int, t: float) -> Sample | None:
    import psutil

    try:
        parent, children = triggerer_tree(pid)
        sup = parent.memory_info().rss
        sup_cpu = sum(parent.cpu_times()[:2])
        runner = runner_cpu = 0.0
        total = float(sup)
        for child in children:
            try:
                rss = child.memory_info().rss
                total += rss
                if runner == 0.0 or rss > runner:  # the trigger runner: the largest child
                    runner, runner_cpu = rss, sum(child.cpu_times()[:2])
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    mb = 1024 * 1024
    return Sample(round(t, 1), sup / mb, runner / mb, total / mb, sup_cpu, runner_cpu)


def _timestamp(entry: dict[str, Any]) -> float | None:
    value = entry.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class TriggerLog:
    """What one trigger's log says: when it started, when the backend served it a token (its audit record),
    when it fired, and the mints it made."""

    started: float | None = None
    served: float | None = None
    fired: float | None = None
    mints: list[tuple[float, float]] = field(default_factory=list)  # (when, ms)


def read_trigger_log(path: Path) -> TriggerLog:
    found = TriggerLog()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        event, at = str(entry.get("event", "")), _timestamp(entry)
        if at is None:
            continue
        if found.started is None and STARTING.match(event):
            found.started = at
        elif found.served is None and entry.get("logger") == AUDIT and '"event": "use"' in event:
            found.served = at
        elif found.fired is None and event == FIRED:
            found.fired = at
        elif minted := MINT.search(event):
            found.mints.append((at, float(minted.group(1))))
    return found


def parse_trigger_logs(log_dir: Path, began: float, delay: float, run: Run) -> None:
    """Fill the run's resolutions, overheads and mints from the trigger logs (times relative to `began`)."""
    for path in sorted(log_dir.rglob("*.trigger.*")):
        found = read_trigger_log(path)
        if found.started is None:
            continue
        if found.served is not None:
            run.resolutions.append((found.served - began, (found.served - found.started) * 1000))
        if found.fired is not None:
            run.overheads.append((found.fired - began, (found.fired - found.started - delay) * 1000))
        run.mints += [(at - began, ms) for at, ms in found.mints]
    run.resolutions.sort()
    run.overheads.sort()
    run.mints.sort()


# -- one soak --------------------------------------------------------------------------------------------------


def soak(
    stack: Any,
    workdir: Path,
    *,
    fast_masking: bool,
    minutes: float,
    tasks: int,
    delay: float,
    interval: float,
    kwargs: dict[str, Any],
    secrets_section: str = "workers",
) -> Run:
    from devstack.deployment import start_deployment

    run = Run(fast_masking, minutes, tasks, delay, interval, dict(kwargs), secrets_section=secrets_section)
    workdir.mkdir(parents=True, exist_ok=True)
    dag_file = workdir / f"{DAG_ID}.py"
    dag_file.write_text(
        DAG_TEMPLATE.format(
            dag_id=DAG_ID, interval=interval, runs=MAX_ACTIVE_RUNS, tasks=tasks, conn_id=CONN_ID, delay=delay
        )
    )
    stack.put(f"connections/{CONN_ID}", stack.kong_connection(CLIENT))
    stack.idp.reset_counts()
    dep = start_deployment(  # the DAG's runs begin as soon as it is parsed, i.e. before this returns
        stack,
        workdir / "deployment",
        executor="local",
        secrets_section=secrets_section,
        backend_kwargs=stack.backend_kwargs(**kwargs, fast_masking=fast_masking),
        dags=[dag_file],
        extra_env=LOGGING,
    )
    began = time.time()
    run.startup_seconds = round(dep.startup_seconds, 1)
    print(f"fast_masking {str(fast_masking).lower()}: deployment started in {dep.startup_seconds:.0f}s", flush=True)
    try:
        pid = dep.components["triggerer"].pid
        end = began + minutes * 60
        while time.time() < end:
            s = sample(pid, time.time() - began)
            if s is not None:
                run.samples.append(s)
                if len(run.samples) % 6 == 0:
                    print(
                        f"  {s.t:5.0f}s  triggerer {s.total_mb:6.1f} MB (supervisor {s.supervisor_mb:.1f}, "
                        f"runner {s.runner_mb:.1f})",
                        flush=True,
                    )
            time.sleep(max(0.0, min(SAMPLE_EVERY, end - time.time())))
        run.idp_requests = stack.idp.token_requests(CLIENT)
        with contextlib.closing(sqlite3.connect(f"file:{dep.db_path}?mode=ro", uri=True, timeout=10)) as db:
            rows = db.execute("SELECT state, count(*) FROM task_instance GROUP BY state").fetchall()
            run.task_states = {str(state): int(n) for state, n in rows}
            run.dag_runs = int(db.execute("SELECT count(*) FROM dag_run").fetchone()[0])
    finally:
        dep.stop()
    parse_trigger_logs(dep.log_dir, began, delay, run)
    horizon = minutes * 60
    run.resolutions = [r for r in run.resolutions if 0 <= r[0] <= horizon]
    run.overheads = [o for o in run.overheads if 0 <= o[0] <= horizon]
    run.mints = [m for m in run.mints if 0 <= m[0] <= horizon]
    return run


# -- report ----------------------------------------------------------------------------------------------------


def buckets(run: Run, width: float) -> list[dict[str, Any]]:
    rows = []
    total = run.minutes * 60
    edge = 0.0
    while edge < total - 1e-6:
        upper = min(edge + width, total)
        res = [ms for t, ms in run.resolutions if edge <= t < upper]
        over = [ms for t, ms in run.overheads if edge <= t < upper]
        mint = [ms for t, ms in run.mints if edge <= t < upper]
        last = [s for s in run.samples if s.t <= upper]
        s = last[-1] if last else None
        rows.append(
            {
                "bucket": f"{edge:.0f}-{upper:.0f} s",
                "resolutions": sum(1 for t, _ in run.resolutions if t < upper),
                "mints": sum(1 for t, _ in run.mints if t < upper),
                "mint_ms": statistics.median(mint) if mint else None,
                "res_ms": statistics.median(res) if res else None,
                "res_p90": _p90(res),
                "over_ms": statistics.median(over) if over else None,
                "runner_mb": s.runner_mb if s else None,
                "supervisor_mb": s.supervisor_mb if s else None,
                "total_mb": s.total_mb if s else None,
            }
        )
        edge = upper
    return rows


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def table(run: Run, width: float) -> str:
    states = ", ".join(f"{n} {state}" for state, n in sorted(run.task_states.items()))
    lines = [
        f"{run.label}: {run.minutes:g} min, "
        f"a run of {run.tasks} deferrable tasks every {run.interval:g} s (up to {MAX_ACTIVE_RUNS} at once), "
        f"the API answering after {run.delay:g} s; "
        f"{len(run.resolutions)} resolutions and {len(run.mints)} mints in the triggerer; {run.dag_runs} DAG runs, "
        f"task instances at the end: {states}; {run.idp_requests} token requests of {CLIENT} at the IdP",
        "",
        "| time | resolutions so far | mints so far | median mint | median resolution (p90) | median trigger "
        "overhead | RSS trigger runner | RSS triggerer supervisor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in buckets(run, width):
        lines.append(
            f"| {row['bucket']} | {row['resolutions']} | {row['mints']} | {_fmt(row['mint_ms'], ' ms')} | "
            f"{_fmt(row['res_ms'], ' ms')} ({_fmt(row['res_p90'], ' ms')}) | {_fmt(row['over_ms'], ' ms')} | "
            f"{_fmt(row['runner_mb'], ' MB', 1)} | {_fmt(row['supervisor_mb'], ' MB', 1)} |"
        )
    first, last = (run.samples[0], run.samples[-1]) if run.samples else (None, None)
    if first and last:
        lines += [
            "",
            f"CPU time used during the soak: trigger runner {last.runner_cpu - first.runner_cpu:.1f} s, supervisor "
            f"{last.supervisor_cpu - first.supervisor_cpu:.1f} s",
        ]
    return "\n".join(lines)


def chart(runs: list[Run], png: Path, width: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9), sharex=True)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for n, run in enumerate(runs):
        colour = colours[n % len(colours)]
        label = run.label
        if run.resolutions:
            xs, ys = zip(*run.resolutions, strict=True)
            top.scatter([x / 60 for x in xs], ys, s=6, alpha=0.25, color=colour)
        rows = [r for r in buckets(run, width) if r["res_p90"] is not None]
        mids = [(float(r["bucket"].split("-")[0]) + width / 2) / 60 for r in rows]
        top.plot(mids, [r["res_p90"] for r in rows], "-o", color=colour, label=f"{label}: p90 resolution")
        orows = [r for r in buckets(run, width) if r["over_ms"] is not None]
        omids = [(float(r["bucket"].split("-")[0]) + width / 2) / 60 for r in orows]
        top.plot(omids, [r["over_ms"] for r in orows], ":", color=colour, label=f"{label}: median trigger overhead")
        mrows = [r for r in buckets(run, width) if r["mint_ms"] is not None]
        mmids = [(float(r["bucket"].split("-")[0]) + width / 2) / 60 for r in mrows]
        top.plot(mmids, [r["mint_ms"] for r in mrows], "--", color=colour, label=f"{label}: median mint")
        ts = [s.t / 60 for s in run.samples]
        bottom.plot(ts, [s.runner_mb for s in run.samples], "-", color=colour, label=f"{label}: trigger runner")
        bottom.plot(ts, [s.supervisor_mb for s in run.samples], ":", color=colour, label=f"{label}: supervisor")
    top.set_yscale("log")
    top.set_ylabel("ms (log scale)")
    top.set_title("Resolutions in the triggerer (dots: each one; lines: per bucket)")
    top.legend(fontsize=7, loc="lower right")
    top.grid(alpha=0.3)
    bottom.set_ylabel("RSS (MB)")
    bottom.set_xlabel("minutes of soak")
    bottom.set_title("RSS of the triggerer's processes")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"chart: {png}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="soak duration per mode (default 5)")
    parser.add_argument("--modes", default="true,false", help="fast_masking values to run, in order")
    parser.add_argument("--tasks", type=int, default=8, help="parallel deferrable tasks (default 8)")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds the API takes per page (default 3)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two DAG runs (default 10)")
    parser.add_argument(
        "--kwargs", type=json.loads, default={}, help="more backend kwargs, JSON: '{\"traceparent\": false}'"
    )
    parser.add_argument(
        "--secrets-section",
        choices=("workers", "secrets"),
        default="workers",
        help="where the backend is configured: [workers] only (the triggerer's supervisor does not build it) or "
        "[secrets] (every process builds it, the supervisor too)",
    )
    parser.add_argument("--bucket", type=float, default=30.0, help="seconds per table row (default 30)")
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG)
    parser.add_argument("--save", type=Path, help="directory for each mode's samples (JSON)")
    parser.add_argument("--workdir", type=Path, help="keep the stack's and deployments' files here")
    parser.add_argument("--load", type=Path, nargs="+", help="report saved runs instead of running")
    args = parser.parse_args(argv)
    if args.minutes > 6:
        parser.error("--minutes: at most 6 per mode")

    runs: list[Run] = []
    if args.load:
        runs = [Run.from_json(json.loads(p.read_text())) for p in args.load]
    else:
        from devstack.stack import running_stack

        modes = [m.strip().lower() == "true" for m in args.modes.split(",") if m.strip()]
        with (
            tempfile.TemporaryDirectory(prefix="triggerer-soak-") as scratch,
            running_stack(Path(args.workdir or scratch) / "stack") as stack,
        ):
            tmp = args.workdir or Path(scratch)
            for fast in modes:
                run = soak(
                    stack,
                    tmp / f"fast-{str(fast).lower()}",
                    fast_masking=fast,
                    minutes=args.minutes,
                    tasks=args.tasks,
                    delay=args.delay,
                    interval=args.interval,
                    kwargs=args.kwargs,
                    secrets_section=args.secrets_section,
                )
                runs.append(run)
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    suffix = "".join(f"-{k}-{json.dumps(v)}" for k, v in args.kwargs.items())
                    suffix += "-secrets-section" if args.secrets_section == "secrets" else ""
                    path = args.save / f"triggerer-soak-{str(fast).lower()}{suffix}.json"
                    path.write_text(json.dumps(asdict(run)))
                print(table(run, args.bucket), flush=True)
    print()
    for run in runs:
        print(table(run, args.bucket))
        print()
    chart(runs, args.png, args.bucket)


if __name__ == "__main__":
    main()
