"""Cost of the correlation headers (traceparent, X-Airflow-*) on a hot resolution, on the real local stack.

.venv/bin/python benchmarks/correlation_headers.py [--n N]     prints a markdown table
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _median_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="hot resolutions to time per row")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    from airflow.sdk.definitions.connection import Connection
    from opentelemetry.sdk.trace import TracerProvider

    from devstack.stack import running_stack
    from kong_secrets_backend import KongSecretsBackend
    from kong_secrets_backend.airflow_bridge.task import TaskIdentity, task_override

    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        stack.put("connections/bench", stack.kong_connection())
        on = KongSecretsBackend(**stack.backend_kwargs())
        off = KongSecretsBackend(**stack.backend_kwargs(task_headers=False, traceparent=False))
        for backend in (on, off):
            backend._set_connection_class(Connection)
            backend.get_conn_value("bench")  # mint once: every timed call is a hot resolution

        rows = [
            ("outside a task, headers on (defaults)", _median_us(lambda: on.get_conn_value("bench"), args.n)),
            ("outside a task, headers off", _median_us(lambda: off.get_conn_value("bench"), args.n)),
        ]
        tracer = TracerProvider().get_tracer("bench")
        with tracer.start_as_current_span("worker.task"), task_override(TaskIdentity("d", "t", "r", 1)):
            rows += [
                ("in a task with an active span, headers on", _median_us(lambda: on.get_conn_value("bench"), args.n)),
                ("in a task with an active span, headers off", _median_us(lambda: off.get_conn_value("bench"), args.n)),
            ]
    print("| hot `get_conn_value` | median |")
    print("|---|---|")
    for label, us in rows:
        print(f"| {label} | {us:.1f} µs |")


if __name__ == "__main__":
    main()
