"""Process age: is a process that has minted 1,000 tokens as fast and as small as a new one? (issue 13)

On the real local stack (OpenBao with the read-only AppRole; kong_jwt, so no identity provider is in the
loop), one process resolves distinct Kong connections one after the other, each with its own kong_jwt
credential: every resolution is cold (a Vault read, a credential parsed, a token minted). Each resolution is
what a task does to get a connection: ``get_connection`` on the backend, then what the task SDK does with the
result (``_mask_connection_secrets``, which masks the whole ``conn.extra``) and what HttpHook reads
(``extra_dejson``, which masks the Authorization header).

For N = 1, 100, 300, 600 and 1,000 mints it reports the cold resolution time (median of the eleven
resolutions around the N-th) and the process's RSS, with the backend kwarg ``fast_masking`` true and false
(each in its own fresh process), next to the raw round trips: the same Vault read and the same JWT signature
made by hand.
With ``fast_masking`` false, Airflow's masker recompiles a regex of every secret on each new one; that run stops
at its time budget, and the points it did not reach are shown as such.

    .venv/bin/python benchmarks/process_age.py [--mints 1000] [--off-budget 150] [--png PATH]

Prints a markdown table and writes a PNG chart (docs/images/process-age.png).

``--masker-only`` measures Airflow's masker alone, without the stack or the backend (for the upstream report):
per mint, the three values Airflow registers (the token, the ``conn.extra`` JSON holding it and a fresh
traceparent, ``"Bearer <token>"``), and at each checkpoint the time of that mint's registrations, the time
to redact an ordinary log line, and the RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PNG = ROOT / "docs" / "images" / "process-age.png"
CHECKPOINTS = (1, 100, 300, 600, 1000)
AROUND = 5  # a checkpoint's time is the median of the resolutions N-5 .. N+5
SERIES_EVERY = 25  # the chart's curve: a point every 25 resolutions
LOG_LINE = (  # an ordinary task log line (140 characters), for the cost of redacting one string
    "Task instance is in running state; dag_id=orders task_id=fetch_orders "
    "run_id=manual__2026-12-01T15:00:00+00:00 file=/opt/airflow/dags/orders.py"
)
REDACTIONS = 2000
PREFIX = "age"


def conn_id(k: int) -> str:
    return f"{PREFIX}_{k}"


def kong_jwt_block(k: int) -> dict[str, Any]:
    """Connection k's own credential (a Kong consumer per connection, as with 1,000 distinct connections)."""
    return {
        "flow": "kong_jwt",
        "key": f"age-consumer-{k}",
        "secret": f"age-secret-{k}-{os.urandom(16).hex()}",
        "algorithm": "HS256",
        "ttl": 300,
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- one process of a given age (a subprocess, so that each mode starts with a new Airflow masker) ------------


def child(spec: dict[str, Any]) -> None:
    logging.disable(logging.WARNING)
    import hvac
    import jwt
    from airflow.sdk.definitions.connection import Connection

    try:  # what the task SDK does with every connection a backend returns (Airflow 3.2+)
        from airflow.sdk.execution_time.context import _mask_connection_secrets
    except ImportError:  # pragma: no cover
        from airflow.sdk.log import mask_secret

        def _mask_connection_secrets(conn: Any) -> None:
            if conn.extra:
                mask_secret(conn.extra)

    from kong_secrets_backend import KongSecretsBackend
    from kong_secrets_backend.airflow_bridge import masking

    backend = KongSecretsBackend(**spec["backend_kwargs"], fast_masking=spec["fast"])
    backend._set_connection_class(Connection)
    vault = hvac.Client(url=spec["vault_url"], token=spec["raw_token"], timeout=5)

    def resolve(k: int) -> None:
        conn = backend.get_connection(conn_id(k))
        assert conn is not None
        _mask_connection_secrets(conn)
        assert conn.extra_dejson["Authorization"].startswith("Bearer ")

    def raw(k: int) -> None:
        data = vault.secrets.kv.v2.read_secret_version(
            path=f"connections/{conn_id(k)}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        auth = data["kong_auth"]
        now = int(time.time())
        jwt.encode({"iss": auth["key"], "iat": now, "exp": now + 300}, auth["secret"], algorithm="HS256")

    resolve(0)  # warm-up: Vault login, connection pools, imports
    raw(0)
    rss0 = rss_mb()
    started = time.perf_counter()
    samples: dict[int, float] = {}
    wanted = {c: range(max(1, c - AROUND), c + AROUND + 1) for c in spec["checkpoints"]}
    last = max(max(r) for r in wanted.values())
    for k in range(1, last + 1):
        t = time.perf_counter()
        resolve(k)
        samples[k] = (time.perf_counter() - t) * 1000
        if k % SERIES_EVERY == 0 or k == 1:  # the curve: median of the last five resolutions
            recent = statistics.median(samples[j] for j in range(max(1, k - 4), k + 1))
            print(json.dumps({"series": k, "cold_ms": recent, "rss_growth_mb": rss_mb() - rss0}), flush=True)
        for c, around in wanted.items():
            if k == around[-1]:
                raw_ms = []
                for j in around:
                    t = time.perf_counter()
                    raw(j)
                    raw_ms.append((time.perf_counter() - t) * 1000)
                point = {
                    "n": c,
                    "cold_ms": statistics.median(samples[j] for j in around),
                    "raw_ms": statistics.median(raw_ms),
                    "rss_mb": rss_mb(),
                    "rss_growth_mb": rss_mb() - rss0,
                    "elapsed_s": time.perf_counter() - started,
                    "fast_active": masking.fast_masking_active(),
                }
                print(json.dumps(point), flush=True)
        if time.perf_counter() - started > spec["budget"]:
            print(json.dumps({"stopped_at": k, "elapsed_s": time.perf_counter() - started}), flush=True)
            return


@dataclass
class Run:
    points: list[dict[str, Any]]  # the checkpoints reached
    series: list[dict[str, Any]]  # the curve
    stopped_at: int | None  # the budget ran out after this many resolutions


def masker_child(spec: dict[str, Any]) -> None:
    """Airflow's masker alone: what one resolution registers, N times, in one process."""
    import secrets

    from kong_secrets_backend.airflow_bridge import masking

    if not spec["fast"]:
        masking.configure(fast_masking=False)
    mask_secret = masking._masker()
    assert mask_secret is not None
    redact = masking._airflow_masker(mask_secret).redact
    masking.mask("warm-up-value-0123456789")
    rss0 = rss_mb()
    started = time.perf_counter()
    for k in range(1, max(spec["checkpoints"]) + 1):
        token = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(300)  # a JWT-sized token
        t = time.perf_counter()
        masking.mask(token)
        mask_secret(json.dumps({"Authorization": f"Bearer {token}", "traceparent": f"00-{secrets.token_hex(16)}-01"}))
        mask_secret({"Authorization": f"Bearer {token}"})  # type: ignore[arg-type]
        ms = (time.perf_counter() - t) * 1000
        if k in spec["checkpoints"]:
            t = time.perf_counter()
            for _ in range(REDACTIONS):
                redact(LOG_LINE)
            redact_us = (time.perf_counter() - t) * 1e6 / REDACTIONS
            point = {"n": k, "cold_ms": ms, "redact_us": redact_us, "rss_growth_mb": rss_mb() - rss0}
            print(json.dumps(point), flush=True)
        if time.perf_counter() - started > spec["budget"]:
            print(json.dumps({"stopped_at": k, "elapsed_s": time.perf_counter() - started}), flush=True)
            return


def masker_only(checkpoints: list[int], budget: float) -> None:
    print(
        "| mints | fast_masking true: one mint's registrations | redacting a log line | RSS growth |"
        " fast_masking false: one mint's registrations | redacting a log line | RSS growth |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    on = run_child({"fast": True, "budget": 3600, "checkpoints": checkpoints, "masker_only": True})
    off = run_child({"fast": False, "budget": budget, "checkpoints": checkpoints, "masker_only": True})
    by_n = {p["n"]: p for p in off.points}
    for p in on.points:
        q = by_n.get(p["n"])
        right = (
            f"{q['cold_ms']:.1f} ms | {q['redact_us']:.1f} µs | {q['rss_growth_mb']:+.0f} MB"
            if q
            else f"not reached in {budget:.0f} s | — | —"
        )
        left = f"{p['cold_ms']:.2f} ms | {p['redact_us']:.1f} µs | {p['rss_growth_mb']:+.0f} MB"
        print(f"| {p['n']:,} | {left} | {right} |")


def run_child(spec: dict[str, Any]) -> Run:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the fast_masking={spec['fast']} process failed ({proc.returncode})")
    run = Run([], [], None)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "stopped_at" in record:
                run.stopped_at = record["stopped_at"]
            elif "series" in record:
                run.series.append(record)
            else:
                run.points.append(record)
    return run


# -- report ------------------------------------------------------------------------------------------------


def table(on_run: Run, off_run: Run, budget: float) -> str:
    on, off = on_run.points, off_run.points
    by_n_off = {p["n"]: p for p in off}
    first_on, first_off = on[0], off[0] if off else None
    last = off_run.series[-1] if off_run.series else None
    unreached = f"not reached in {budget:.0f} s | —"
    if last is not None and off_run.stopped_at:
        unreached = (
            f"not reached in {budget:.0f} s (at {last['series']}: {last['cold_ms']:.0f} ms) |"
            f" ({last['rss_growth_mb']:+.0f} MB at {last['series']})"
        )
    lines = [
        "| mints in the process | raw round trips (Vault read + JWT signature) | cold resolution, fast_masking true |"
        " RSS growth, true | cold resolution, fast_masking false | RSS growth, false |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in on:
        q = by_n_off.get(p["n"])
        off_cells = (
            f"{q['cold_ms']:.1f} ms ({q['cold_ms'] / first_off['cold_ms']:.1f}x) | {q['rss_growth_mb']:+.0f} MB"
            if q and first_off
            else unreached
        )
        lines.append(
            f"| {p['n']:,} | {p['raw_ms']:.1f} ms | {p['cold_ms']:.1f} ms ({p['cold_ms'] / first_on['cold_ms']:.2f}x) |"
            f" {p['rss_growth_mb']:+.0f} MB | {off_cells} |"
        )
    return "\n".join(lines)


def chart(on_run: Run, off_run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for run, label, style in ((on_run, "fast_masking true", "-"), (off_run, "fast_masking false", "--")):
        xs = [p["series"] for p in run.series]
        left.plot(xs, [p["cold_ms"] for p in run.series], style, label=label)
        right.plot(xs, [p["rss_growth_mb"] for p in run.series], style, label=label)
    left.plot([p["n"] for p in on_run.points], [p["raw_ms"] for p in on_run.points], "k:o", label="raw round trips")
    left.set_yscale("log")
    left.set_xlabel("tokens minted in the process")
    left.set_ylabel("cold resolution (ms, log scale)")
    left.set_title("Time of the next cold resolution")
    right.set_xlabel("tokens minted in the process")
    right.set_ylabel("RSS growth since the first resolution (MB)")
    right.set_title("Process size")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mints", type=int, default=1000, help="the largest checkpoint")
    parser.add_argument("--off-budget", type=float, default=150.0, help="seconds for the fast_masking false run")
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG, help="where to write the chart")
    parser.add_argument("--masker-only", action="store_true", help="Airflow's masker alone (no stack)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        (masker_child if spec.get("masker_only") else child)(spec)
        return
    logging.disable(logging.WARNING)

    from devstack.stack import running_stack

    checkpoints = [c for c in CHECKPOINTS if c < args.mints] + [args.mints]
    if args.masker_only:
        masker_only(checkpoints, args.off_budget)
        return
    with tempfile.TemporaryDirectory(prefix="ksb-age-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        t = time.perf_counter()
        for k in range(args.mints + AROUND + 1):
            stack.put(f"connections/{conn_id(k)}", stack.connection(kong_jwt_block(k)))
        print(f"{args.mints + AROUND + 1} connections written to OpenBao in {time.perf_counter() - t:.0f} s")
        spec = {
            "backend_kwargs": stack.backend_kwargs(),
            "vault_url": stack.bao.url,
            "raw_token": stack.bao.root_token,
            "checkpoints": checkpoints,
        }
        t = time.perf_counter()
        on = run_child({**spec, "fast": True, "budget": 3600})
        print(f"fast_masking true: {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        off = run_child({**spec, "fast": False, "budget": args.off_budget})
        print(f"fast_masking false: {time.perf_counter() - t:.0f} s")
    assert all(p["fast_active"] for p in on.points) and not any(p["fast_active"] for p in off.points)
    print()
    print(table(on, off, args.off_budget))
    chart(on, off, args.png)
    print(f"\nchart: {args.png.relative_to(ROOT) if args.png.is_relative_to(ROOT) else args.png}")


if __name__ == "__main__":
    main()
