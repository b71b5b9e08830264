"""The Airflow harness (devstack/airflow.py) on its own: the example DAG against a local HTTP server, no Kong."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack.airflow import EXAMPLE_DAGS, all_output, dags_test, prepare_airflow, template_migrate_seconds

MARKER = f"orders-{uuid.uuid4().hex}"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Upstream:
    port: int
    requests: list[Recorded] = field(default_factory=list)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            up.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            body = json.dumps({"orders": [{"id": 1}], "marker": MARKER}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    up.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.e2e
def test_example_dag_runs_against_local_server(upstream: Upstream, tmp_path: Path) -> None:
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": upstream.port,
        "schema": "http",
        "extra": {"X-Test": "yes"},
    }
    started = time.monotonic()
    af = prepare_airflow(
        tmp_path,
        backend="",
        backend_kwargs={},
        dags_folder=EXAMPLE_DAGS,
        extra_env={"AIRFLOW_CONN_KONG_ORDERS": json.dumps(conn)},
    )
    prepared = time.monotonic() - started
    result = dags_test(af, "kong_orders", timeout=120)
    output = all_output(result)
    print(
        f"\nprepare_airflow {prepared:.1f}s (db migrate {template_migrate_seconds():.1f}s), "
        f"dags test {result.duration:.1f}s, {result!r}"
    )

    assert result.ok, output[-6000:]
    assert result.task_states == {"get_orders": "success"}
    assert [(r.method, r.path) for r in upstream.requests] == [("GET", "/orders")]
    assert upstream.requests[0].headers.get("x-test") == "yes"
    assert "authorization" not in upstream.requests[0].headers
    # log_response=True: the task log (the response body) is part of what the harness captured.
    assert MARKER in output
