"""benchmarks/token_economy.py's report: the table states each target and the chart is a real PNG."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import token_economy as bench  # noqa: E402


def report() -> bench.Report:
    r = bench.Report(processes=20, resolutions=10, floor_us=10.0, official_us=2000.0, raw_ms=20.0, import_ms=20.0)
    r.hot_us = {"memory": 12.0, "file": 12.5, "redis": 12.2}
    r.cold_ms = {"memory": 22.0, "file": 23.0, "redis": 26.0}
    r.cold_ratio = {"memory": 1.1, "file": 1.15, "redis": 1.3}
    r.cold_ratio_mask = {"memory": 1.0, "file": 1.05, "redis": 1.2}
    r.raw_mask_ms = 22.0
    r.fleet = [
        bench.FleetRow("memory", 1, 20, 40, None, 0, 1.0),
        bench.FleetRow("file", 1, 1, 40, None, 0, 1.0),
        bench.FleetRow("file", 2, 2, 40, None, 0, 1.0),
        bench.FleetRow("redis", 2, 1, 40, 280, 0, 1.0),
    ]
    r.lifetime_seconds = 16
    r.lifetime = [bench.FleetRow("redis", 2, 4, 40, 900, 0, 16.0)]
    return r


def test_the_table_names_every_target_and_whether_it_is_met() -> None:
    table = bench.markdown(report())
    assert "| hot / floor | 1.20x | <= 1.5x ✅ |" in table
    assert "| official / hot | 167x faster | >= 30x ✅ |" in table
    assert "| 26.0 ms (1.30x raw, 1.20x raw + masking) | <= 1.2x raw ❌ |" in table  # redis cold
    assert "| redis | 2 | 1 (target = 1 for the fleet) ✅ |" in table
    assert "| memory | 1 | 20 (target = P (20)) ✅ |" in table


def test_the_chart_is_written_as_a_png(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    bench.chart(report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
