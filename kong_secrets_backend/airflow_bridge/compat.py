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


def connection_class(backend: Any) -> type:
    """The Connection class a secrets backend must build: the one Airflow set for the execution context (3.2+:
    the task SDK's in workers, the ORM's on the server), else the ORM ``Connection`` that Airflow 3.0/3.1's own
    ``deserialize_connection`` builds."""
    getter = getattr(backend, "_get_connection_class", None)
    if getter is not None:
        return getter()  # type: ignore[no-any-return]
    from airflow.models.connection import Connection

    return Connection


def set_connection_class(backend: Any, conn_class: type) -> None:
    """``backend._set_connection_class(conn_class)`` where Airflow has it (3.2+); a no-op before."""
    setter = getattr(backend, "_set_connection_class", None)
    if setter is not None:
        setter(conn_class)
