"""Session-wide leak scan: every log record, captured stdout/stderr and `airflow dags test` output of the suite
is kept, and at the end searched for every planted secret (client secrets, Vault credentials, raw tokens).
"""

from __future__ import annotations

import logging
import threading


class LeakScan:
    def __init__(self) -> None:
        self._planted: set[str] = set()
        self._texts: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def plant(self, *values: str | None) -> None:
        """Values that must appear nowhere in the suite's output (only long enough ones: no false alarms)."""
        with self._lock:
            self._planted.update(v for v in values if v and len(v) >= 8)

    def record(self, where: str, text: str | None) -> None:
        if text:
            with self._lock:
                self._texts.append((where, text))

    def leaks(self) -> list[tuple[str, str]]:
        """(where, secret prefix) for each planted value found."""
        with self._lock:
            return [
                (where, f"{secret[:6]}...") for where, text in self._texts for secret in self._planted if secret in text
            ]

    @property
    def volume(self) -> tuple[int, int]:
        with self._lock:
            return len(self._texts), sum(len(t) for _, t in self._texts)


class RecordingHandler(logging.Handler):
    """Keeps every log record of the process, as raw as it gets (before Airflow's masker)."""

    def __init__(self, scan: LeakScan) -> None:
        super().__init__(level=logging.NOTSET)
        self.scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{record.exc_info[1]!r}"
        self.scan.record(f"log:{record.name}", text)


LEAKS = LeakScan()
