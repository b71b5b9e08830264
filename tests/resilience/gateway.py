"""Shared by the resilience tests: what the gateway says of a resolved connection."""

from __future__ import annotations

import requests
from airflow.sdk.definitions.connection import Connection

from devstack.stack import Stack


def accepted(stack: Stack, conn: Connection | None) -> str:
    """Call the gateway's /orders with the connection's headers; assert it passed; return its Authorization."""
    assert conn is not None
    resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
    assert resp.status_code == 200, resp.text
    return str(conn.extra_dejson["Authorization"])
