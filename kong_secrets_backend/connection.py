"""The connection Airflow gets back: the secret's own fields, the auth header in the extras, nothing of kong_auth."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from kong_secrets_backend.errors import SecretFormatError

log = logging.getLogger(__name__)


def plain_conn_value(data: dict[str, Any]) -> str:
    """Exactly what Airflow's VaultBackend.get_conn_value returns for a secret without kong_auth."""
    uri = data.get("conn_uri")
    if uri:
        return str(uri)
    return json.dumps(data)


def check_kong_connection_fields(data: dict[str, Any]) -> None:
    """Refuse, before any token is minted, a Kong connection that could not be returned."""
    if data.get("conn_uri"):
        raise SecretFormatError("kong_auth cannot be combined with conn_uri; store the connection as JSON fields")
    _extra_dict(data.get("extra"))
    port = data.get("port")
    if port not in (None, "") and not (
        (isinstance(port, int) and not isinstance(port, bool)) or (isinstance(port, str) and port.isdigit())
    ):
        raise SecretFormatError("port must be an integer")


def kong_conn_value(
    data: dict[str, Any],
    *,
    header_name: str,
    header_value: str,
    conn_id: str,
    extra_headers: Mapping[str, str] | None = None,
) -> str:
    """JSON for Connection.from_json: the secret's fields minus kong_auth, login/password emptied, header added.

    ``extra_headers`` (correlation headers, see trace_headers.py) replace same-named extras, case-insensitively,
    but never the auth header.
    """
    if data.get("conn_uri"):
        raise SecretFormatError("kong_auth cannot be combined with conn_uri; store the connection as JSON fields")
    out = {k: v for k, v in data.items() if k != "kong_auth"}
    for name in ("login", "password"):
        if out.get(name):
            # HttpHook switches to Basic auth when login is set, replacing the bearer header.
            log.warning("kong-secrets-backend: conn_id %s: ignoring %s, Kong auth replaces it", conn_id, name)
        out.pop(name, None)
    extra = _extra_dict(out.get("extra"))
    for existing in [k for k in extra if k.lower() == header_name.lower()]:
        del extra[existing]
    extra[header_name] = header_value
    for name, value in (extra_headers or {}).items():
        if name.lower() == header_name.lower():
            continue
        for existing in [k for k in extra if k.lower() == name.lower()]:
            del extra[existing]
        extra[name] = value
    out["extra"] = extra
    return json.dumps(out)


def _extra_dict(extra: Any) -> dict[str, Any]:
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            raise SecretFormatError("extra is a string but not a JSON object") from None
    if not isinstance(extra, dict):
        raise SecretFormatError(f"extra must be a JSON object, not {type(extra).__name__}")
    return dict(extra)
