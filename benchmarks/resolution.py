"""Resolution cost on the real local stack (OpenBao, oidc-provider, HAProxy). Prints a markdown table.

.venv/bin/python benchmarks/resolution.py [--hot N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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


def _import_ms() -> float:
    code = "import time; t=time.perf_counter(); import kong_secrets_backend; print((time.perf_counter()-t)*1000)"
    runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hot", type=int, default=2000, help="hot resolutions to time")
    args = parser.parse_args()

    import logging

    logging.disable(logging.INFO)
    from airflow.providers.hashicorp.secrets.vault import VaultBackend
    from airflow.sdk.definitions.connection import Connection

    from devstack.stack import running_stack
    from kong_secrets_backend import KongSecretsBackend

    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        stack.put("connections/bench", stack.kong_connection())
        plain = {k: v for k, v in stack.kong_connection().items() if k != "kong_auth"}
        stack.put("connections/bench_plain", plain)  # VaultBackend cannot read kong_auth: time it on the rest
        ours = KongSecretsBackend(**stack.backend_kwargs())
        ours._set_connection_class(Connection)
        official = VaultBackend(**stack.backend_kwargs())
        official._set_connection_class(Connection)

        stack.idp.reset_counts()
        vault0 = stack.bao.request_count()
        t = time.perf_counter()
        value = ours.get_conn_value("bench")
        cold_ms = (time.perf_counter() - t) * 1000
        assert value is not None
        for _ in range(49):
            ours.get_connection("bench")
        idp_requests = stack.idp.token_requests()
        vault_requests = stack.bao.request_count() - vault0

        hot_us = _median_us(lambda: ours.get_connection("bench"), args.hot)
        floor_us = _median_us(lambda: Connection.from_json(value, conn_id="bench"), args.hot)
        official_us = _median_us(lambda: official.get_connection("bench_plain"), max(50, args.hot // 20))

    rows = [
        ("cold resolution (Vault login + read + token request)", f"{cold_ms:.1f} ms"),
        ("hot resolution, median (get_connection)", f"{hot_us:.0f} µs"),
        ("floor: Connection.from_json of the same JSON, median", f"{floor_us:.0f} µs"),
        ("official VaultBackend.get_connection, median (plain copy, no token)", f"{official_us:.0f} µs"),
        ("hot / floor", f"{hot_us / floor_us:.2f}x"),
        ("official / hot", f"{official_us / hot_us:.0f}x"),
        ("IdP token requests for 50 resolutions", str(idp_requests)),
        ("Vault HTTP requests for 50 resolutions", str(vault_requests)),
        ("`import kong_secrets_backend`, median of 5", f"{_import_ms():.1f} ms"),
    ]
    print("| measure | value |\n|---|---|")
    for name, val in rows:
        print(f"| {name} | {val} |")
    print(json.dumps({"hot_us": hot_us, "floor_us": floor_us, "official_us": official_us}), file=sys.stderr)


if __name__ == "__main__":
    main()
