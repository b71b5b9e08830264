"""The audit trail: one JSON record per mint and per first use of a token by a task try.

Records go to the logger ``kong_secrets_backend.audit`` at INFO, each a single JSON object, so that they land
in the task's own log (Airflow captures a task process's logging) and can be shipped like any log line:

- ``event: "mint"``: the backend obtained a new token (inside or outside a task);
- ``event: "use"``: inside a task, the first time this task try is handed a given token (a cold mint inside a
  task gives ``mint`` then ``use``).

Fields: ``event``, ``conn_id``, ``dag_id``, ``task_id``, ``run_id``, ``try_number``, ``map_index`` (null when not
mapped), ``flow``, ``consumer`` (who Kong sees: the client_id, the jwt credential's key, the Vault entity's
``sub``, key_auth's optional ``consumer``), ``scope`` (as granted, else as requested), ``audience``,
``token_id`` (the JWT's ``jti``; for an opaque token the first 12 hex digits of its SHA-256; null for key_auth),
``expires_at`` (ISO 8601 UTC: the expiry the backend uses) and ``trace_id`` (of the ``traceparent`` sent to
Kong, if any), so that one id joins the task log, this record and Kong's log. A record never holds a token,
a secret or a hash of a secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.airflow_bridge.trace_headers import current_traceparent
from kong_secrets_backend.state import PROCESS
from kong_secrets_backend.tokens import Origin

if TYPE_CHECKING:
    from kong_secrets_backend.airflow_bridge.task import TaskIdentity
    from kong_secrets_backend.connection import KongConnection
    from kong_secrets_backend.tokens import Token

AUDIT = logging.getLogger("kong_secrets_backend.audit")

FIELDS = (
    "event",
    "conn_id",
    "dag_id",
    "task_id",
    "run_id",
    "try_number",
    "map_index",
    "flow",
    "consumer",
    "scope",
    "audience",
    "token_id",
    "expires_at",
    "trace_id",
)


def record(
    conn_id: str,
    connection: KongConnection,
    token: Token,
    origin: Origin,
    task: TaskIdentity | None,
) -> None:
    """Log what this resolution adds to the trail: a mint, a first use by this task try, both or nothing."""
    minted = origin is Origin.MINTED
    first_use = False
    if task is not None:  # which (task try, token) pairs were recorded: bounded, owned by the process state
        use = (task.dag_id, task.task_id, task.run_id, task.try_number, task.map_index, conn_id, token.value)
        first_use = PROCESS.audited_uses.get(use) is None and PROCESS.audited_uses.add(use, True)
    if not (minted or first_use) or not AUDIT.isEnabledFor(logging.INFO):
        return
    base = _fields(conn_id, connection, token, origin, task)
    if minted:
        AUDIT.info(json.dumps({"event": "mint", **base}))
    if first_use:
        AUDIT.info(json.dumps({"event": "use", **base}))


def _fields(
    conn_id: str, connection: KongConnection, token: Token, origin: Origin, task: TaskIdentity | None
) -> dict[str, Any]:
    credential = connection.credential
    claims = token.claims
    scope = claims.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    audience = getattr(credential, "audience", None) or claims.get("aud")
    return {
        "conn_id": conn_id,
        "dag_id": task.dag_id if task else None,
        "task_id": task.task_id if task else None,
        "run_id": task.run_id if task else None,
        "try_number": task.try_number if task else None,
        "map_index": task.map_index if task else None,
        "flow": connection.flow.name,
        "consumer": credential.consumer or _str(claims.get("sub")),
        "scope": _str(scope) or getattr(credential, "scope", None),
        "audience": audience if isinstance(audience, (str, list)) else None,
        "token_id": None if origin is Origin.STATIC else _str(claims.get("jti")) or _digest(token.value),
        "expires_at": None
        if origin is Origin.STATIC
        else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.expires_at)),
        "trace_id": trace_id(current_traceparent()),
    }


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


__all__ = ["AUDIT", "FIELDS", "record", "trace_id"]
