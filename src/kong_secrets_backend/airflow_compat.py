"""The few Airflow internals the backend touches, imported lazily and across 3.x versions."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _conf() -> Any:
    try:
        from airflow.sdk.configuration import conf  # 3.1+: the task SDK's conf

        return conf
    except ImportError:  # pragma: no cover - 3.0
        from airflow.configuration import conf

        return conf


def multi_team_enabled() -> bool:
    """Airflow's ``[core] multi_team`` flag (AIP-67), false where the option does not exist."""
    try:
        return bool(_conf().getboolean("core", "multi_team", fallback=False))
    except Exception:
        return False
