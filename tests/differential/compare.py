"""Run the same lookups on two backends and report every difference (value, Connection field, or error type)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CONNECTION_FIELDS = ("conn_id", "conn_type", "description", "host", "schema", "login", "password", "port", "extra")


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", exception type): both backends must fail alike where they fail."""
    try:
        return "ok", call()
    except Exception as exc:
        return "error", type(exc).__name__


def connection_view(conn: Any) -> dict[str, Any] | None:
    """Every field of the Connection Airflow gets, and its parsed extras."""
    if conn is None:
        return None
    view = {name: getattr(conn, name, None) for name in CONNECTION_FIELDS}
    view["extra_dejson"] = conn.extra_dejson
    return view


def differences(
    ours: Any,
    official: Any,
    *,
    connections: Iterable[str] = (),
    variables: Iterable[str] = (),
    config: Iterable[str] = (),
    team_name: str | None = None,
    objects: bool = True,
) -> list[str]:
    """One line per lookup whose outcome differs; [] when the backends agree on everything.

    objects: also build the Connection (get_connection) and compare its fields. Without it only the serialized
    value is compared (Airflow builds the Connection from that value).
    """
    team = {"team_name": team_name} if team_name is not None else {}
    checks: list[tuple[str, Callable[[Any], Any]]] = []
    for key in connections:
        checks.append((f"get_conn_value({key!r})", lambda b, k=key: b.get_conn_value(k, **team)))
        if objects:
            checks.append((f"get_connection({key!r})", lambda b, k=key: connection_view(b.get_connection(k, **team))))
    for key in variables:
        checks.append((f"get_variable({key!r})", lambda b, k=key: b.get_variable(k, **team)))
    for key in config:
        checks.append((f"get_config({key!r})", lambda b, k=key: b.get_config(k)))
    out = []
    for label, check in checks:
        a, b = outcome(lambda c=check: c(ours)), outcome(lambda c=check: c(official))
        if a != b:
            out.append(f"{label}: ours {a!r} != official {b!r}")
    return out
