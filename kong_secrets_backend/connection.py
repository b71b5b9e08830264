"""A Kong connection: its secret parsed (purely, into frozen objects) and the connection Airflow gets back.

- :func:`parse_kong_auth` reads a connection secret's ``kong_auth`` block, merged with its shared
  credential, into a :class:`KongAuth`. It reads nothing and changes nothing: the secret's data is
  never mutated, so a restriction such as ``allowed_dags`` cannot be lost on any path.
- A shared credential (the secret at ``credentials_path``) is authoritative: it holds the endpoint and the
  client; a connection naming it may set only :data:`BORROWER_FIELDS`, may only narrow its ``scope``, and
  must agree with it on ``flow`` and ``header_name`` where both set them. The credential's own
  ``allowed_dags`` apply in addition to the connection's. :func:`credentials_path` checks the connection
  and confines the path under the ``credentials_prefix`` setting, by whole segments, before it is read.
- :class:`KongConnection` is one version of a connection: the record, what ``kong_auth`` says, the flow
  that mints its tokens; :meth:`KongConnection.check_access` applies ``allowed_dags``.
- :func:`kong_conn_value` is what Airflow gets back: the secret's own fields, the auth header in the
  extras, nothing of ``kong_auth``; :func:`plain_conn_value` is the official backends' reading.

Two rules keep the credential where it belongs (docs/security.md, "Redirects" and "Plaintext"):

- HttpHook and HttpAsyncHook follow redirects by default, and requests and aiohttp drop only ``Authorization``
  when a redirect leaves the origin. A Kong connection whose header is anything else (key_auth's ``apikey``, a
  custom ``header_name``) therefore comes back with ``"allow_redirects": false`` in its extras (a request option
  for both hooks, not a header), unless the secret's own ``extra`` sets ``allow_redirects``.
- HttpHook uses ``http://`` when a connection has no ``schema``: a Kong connection without one comes back with
  ``schema: "https"``, and one whose effective scheme is ``http`` (its ``schema``, or a scheme written into
  ``host``) to a host that is not loopback is refused by name before any token is minted, unless the backend
  kwarg ``allow_insecure_http`` is true.

``allowed_dags`` patterns are shell-style globs (``fnmatch``, case-sensitive) matched against the dag_id
of the running task. A resolution outside any task, or from a DAG that matches no pattern, is refused;
the backend turns the refusal into Airflow's ``AirflowSecretsBackendAccessDenied``, the one backend
exception Airflow lets through to the task instead of falling back to other backends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kong_secrets_backend.errors import AccessDenied, SecretFormatError
from kong_secrets_backend.flows import parse_credential
from kong_secrets_backend.flows.fields import scope_value
from kong_secrets_backend.sources.paths import validate_secret_id
from kong_secrets_backend.transport.urls import is_loopback

if TYPE_CHECKING:
    from kong_secrets_backend.airflow_bridge.task import TaskIdentity
    from kong_secrets_backend.flows import Credential, TokenFlow
    from kong_secrets_backend.settings import Settings
    from kong_secrets_backend.sources import SecretRecord
    from kong_secrets_backend.tokens import Token

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 64 * 1024  # no kong_auth value (a PEM key included) is legitimately longer
# Fields of a connection's kong_auth block that are the connection's own, never the credential's.
CONNECTION_FIELDS = ("allowed_dags", "credentials_path", "task_scopes")
DAG_ID_PLACEHOLDER = "{dag_id}"  # in credentials_path: each DAG uses its own Kong consumer's credential
_TASK_SCOPE_FIELDS = frozenset({"dags", "tasks", "scope"})
# The only fields a connection that names a credentials_path may set: the shared credential holds the rest
# (the endpoint, the client, its secret or key, audience, resource, token_params, ...).
BORROWER_FIELDS = frozenset({"flow", "credentials_path", "header_name", "allowed_dags", "task_scopes", "scope"})
AGREED_FIELDS = ("flow", "header_name")  # where both the connection and its shared credential set one
_SHOWN_CHARS = 64  # a field name or path quoted in an error is cut to this length
# The one header requests and aiohttp drop on a redirect to another origin (compared case-insensitively).
REDIRECT_SAFE_HEADER = "authorization"


def load_kong_auth(raw: Any) -> dict[str, Any]:
    """The kong_auth value as a new dict: a JSON object, or a string holding one (``vault kv put k kong_auth=@f``)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise SecretFormatError(
                f"kong_auth is a string but not valid JSON (line {getattr(exc, 'lineno', '?')})"
            ) from None
    if not isinstance(raw, dict):
        raise SecretFormatError(f"kong_auth must be a JSON object, not {type(raw).__name__}")
    return dict(raw)


def credentials_path(record: SecretRecord, task: TaskIdentity | None, settings: Settings) -> str | None:
    """The shared credential a connection secret names, ``{dag_id}`` filled in from the running task, checked
    before it is read: a safe path under ``credentials_prefix``, named by a connection that sets only the
    fields a borrower may set. A per-DAG credential outside any task is refused: there is no DAG to pick its
    consumer. Pure."""
    block = load_kong_auth(record.data["kong_auth"])
    path = block.get("credentials_path")
    if path is not None and (not isinstance(path, str) or not path.strip("/")):
        raise SecretFormatError("kong_auth.credentials_path must be a non-empty string")
    if path is None:
        return None
    if DAG_ID_PLACEHOLDER in path:
        if task is None:
            raise AccessDenied(
                f"kong_auth.credentials_path {_shown(path)} names a credential per DAG and this resolution is "
                "outside any task (dag_id: none)"
            )
        validate_secret_id(task.dag_id, kind="dag_id")
        path = path.replace(DAG_ID_PLACEHOLDER, task.dag_id)
    validate_secret_id(path.strip("/"), kind="kong_auth.credentials_path")
    check_credentials_path(path, settings.credentials_prefix)
    check_borrower_fields(block, path)
    return path


def check_credentials_path(path: str, prefix: str | None) -> None:
    """Refuse a credentials_path outside ``prefix``, by whole path segments (``kong/consumers`` admits
    ``kong/consumers/x``, not ``kong/consumers-admin/x`` nor ``kong/consumers`` itself)."""
    if prefix is None:
        return
    wanted = prefix.strip("/").split("/")
    segments = path.strip("/").split("/")
    if len(segments) <= len(wanted) or segments[: len(wanted)] != wanted:
        raise SecretFormatError(
            f"kong_auth.credentials_path {_shown(path)!r} is outside credentials_prefix {prefix!r}; it was not read"
        )


def check_borrower_fields(block: Mapping[str, Any], path: str) -> None:
    """A connection that names a credentials_path sets only BORROWER_FIELDS; any other is refused by name."""
    refused = sorted(set(block) - BORROWER_FIELDS)
    if refused:
        raise SecretFormatError(
            f"kong_auth.{', kong_auth.'.join(_shown(n) for n in refused)} may not be set by a connection that "
            f"names credentials_path {_shown(path)!r}: the shared credential holds the endpoint and the client "
            f"(a connection may set only {', '.join(sorted(BORROWER_FIELDS))})"
        )


def is_per_dag(record: SecretRecord) -> bool:
    """The connection's credential is chosen per DAG (``{dag_id}`` in its credentials_path)."""
    path = load_kong_auth(record.data["kong_auth"]).get("credentials_path")
    return isinstance(path, str) and DAG_ID_PLACEHOLDER in path


def shared_fields(record: SecretRecord) -> dict[str, Any]:
    """A shared credential's fields: the secret itself, or its kong_auth block when it has one."""
    return load_kong_auth(record.data["kong_auth"]) if "kong_auth" in record.data else dict(record.data)


@dataclass(frozen=True)
class TaskScope:
    """One ``task_scopes`` entry: the scope of the tokens of the tasks it matches."""

    scope: str
    dags: tuple[str, ...] = ("*",)
    tasks: tuple[str, ...] = ("*",)

    def matches(self, task: TaskIdentity) -> bool:
        return any(fnmatchcase(task.dag_id, p) for p in self.dags) and any(
            fnmatchcase(task.task_id, p) for p in self.tasks
        )


@dataclass(frozen=True)
class KongAuth:
    """What a connection's ``kong_auth`` says, merged with its shared credential."""

    credential: Credential = field(repr=False)
    allowed_dags: tuple[str, ...] | None = None
    credentials_path: str | None = None  # as read, {dag_id} filled in
    version: str | None = None  # the credential's version: the connection's, or path@version of the shared one
    task_scopes: tuple[TaskScope, ...] = ()
    per_dag: bool = False  # credentials_path names one credential per DAG ({dag_id})
    credential_allowed_dags: tuple[str, ...] | None = None  # the shared credential's own, enforced as well

    def scope_for(self, task: TaskIdentity | None) -> str | None:
        """The scope of this task's token: the first matching task_scopes entry's, else the block's."""
        if task is not None:
            for entry in self.task_scopes:
                if entry.matches(task):
                    return entry.scope
        return getattr(self.credential, "scope", None)


def parse_kong_auth(
    record: SecretRecord, *, shared: SecretRecord | None, settings: Settings, task: TaskIdentity | None = None
) -> KongAuth:
    """Parse a Kong connection secret (and the shared credential it names, already read; ``task`` fills in a
    ``{dag_id}`` credentials_path). Pure: it reads nothing and changes neither secret; every rule of a shared
    credential is checked on every call."""
    check_kong_connection_fields(record.data, allow_insecure_http=settings.allow_insecure_http)
    block = load_kong_auth(record.data["kong_auth"])
    check_field_sizes(block)
    allowed_dags = parse_allowed_dags(block.get("allowed_dags"))
    task_scopes = parse_task_scopes(block.get("task_scopes"))
    path = credentials_path(record, task, settings)
    credential_block = {k: v for k, v in block.items() if k not in CONNECTION_FIELDS}
    version = record.version
    credential_allowed_dags = None
    if path is not None:
        if shared is None:
            raise SecretFormatError(f"kong_auth.credentials_path {_shown(path)!r} was not read")
        credential_block, credential_allowed_dags = borrowed_credential(block, shared_fields(shared), path)
        # connections sharing one credential share its tokens: the key follows the credential's version
        version = f"{shared.path}@{shared.version}"
    credential = parse_credential(credential_block, settings=settings, version=version)
    if task_scopes:
        _check_task_scopes(task_scopes, credential, shared)
    return KongAuth(
        credential=credential,
        allowed_dags=allowed_dags,
        credentials_path=path,
        version=version,
        task_scopes=task_scopes,
        per_dag=is_per_dag(record),
        credential_allowed_dags=credential_allowed_dags,
    )


def borrowed_credential(
    block: Mapping[str, Any], shared: Mapping[str, Any], path: str
) -> tuple[dict[str, Any], tuple[str, ...] | None]:
    """The kong_auth block a borrowing connection gets (a new dict: the shared credential's fields, narrowed
    by the connection's scope, completed by its flow and header_name) and the credential's own allowed_dags."""
    check_field_sizes(shared)
    own = sorted(set(shared) & {"credentials_path", "task_scopes"})
    if own:
        raise SecretFormatError(f"the shared credential at {_shown(path)!r} sets {', '.join(own)}: a connection's own")
    credential_allowed_dags = parse_allowed_dags(
        shared.get("allowed_dags"), field_name=f"allowed_dags of the shared credential at {_shown(path)!r}"
    )
    merged = {k: v for k, v in shared.items() if k != "allowed_dags"}
    for name in AGREED_FIELDS:
        mine, theirs = block.get(name), shared.get(name)
        if mine is None:
            continue
        if theirs is None:
            merged[name] = mine
        elif not _agree(name, mine, theirs):
            raise SecretFormatError(
                f"kong_auth.{name} of the connection differs from that of its shared credential at "
                f"{_shown(path)!r}; where both set it they must agree"
            )
    scope = narrowed_scope(block.get("scope"), shared.get("scope"), path)
    if scope is not None:
        merged["scope"] = scope
    return merged, credential_allowed_dags


def narrowed_scope(asked: Any, granted: Any, path: str) -> str | None:
    """The connection's scope, if it sets one: a subset (as a set of space-separated values) of the shared
    credential's; a credential without a scope admits none."""
    wanted = scope_value(asked)
    if wanted is None:
        return None
    held = scope_value(granted)
    if held is None:
        raise SecretFormatError(
            f"kong_auth.scope is set but the shared credential at {_shown(path)!r} has no scope; "
            "a connection may only narrow its shared credential's scope"
        )
    beyond = sorted(set(wanted.split()) - set(held.split()))
    if beyond:
        shown = " ".join(beyond)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise SecretFormatError(
            f"kong_auth.scope asks for {shown!r} beyond the scope of its shared credential at {_shown(path)!r}; "
            "a connection may only narrow it"
        )
    return wanted


def _agree(name: str, mine: Any, theirs: Any) -> bool:
    if name == "header_name" and isinstance(mine, str) and isinstance(theirs, str):
        return mine.lower() == theirs.lower()  # HTTP header names are case-insensitive
    return bool(mine == theirs)


def _shown(text: str) -> str:
    """A field name or path from a secret, fit for an error: printable characters only, and short."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def parse_task_scopes(value: Any) -> tuple[TaskScope, ...]:
    """``task_scopes``: a list of ``{"dags": [glob], "tasks": [glob], "scope": "..."}`` (globs default to ``*``)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise SecretFormatError("kong_auth.task_scopes must be a non-empty list of {dags, tasks, scope} objects")
    entries = []
    for i, entry in enumerate(value):
        where = f"kong_auth.task_scopes[{i}]"
        if not isinstance(entry, dict):
            raise SecretFormatError(f"{where} must be an object with dags, tasks and scope")
        unknown = sorted(set(entry) - _TASK_SCOPE_FIELDS)
        if unknown:
            raise SecretFormatError(f"{where} has unknown fields: {', '.join(map(str, unknown))}")
        scope = _scope_string(entry.get("scope"), f"{where}.scope")
        globs = {name: _globs(entry.get(name, ["*"]), f"{where}.{name}") for name in ("dags", "tasks")}
        entries.append(TaskScope(scope=scope, dags=globs["dags"], tasks=globs["tasks"]))
    return tuple(entries)


def scope_set(scope: Any) -> frozenset[str]:
    """A scope as a set of its space-separated values (the order of scopes carries no meaning)."""
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def _check_task_scopes(entries: tuple[TaskScope, ...], credential: Credential, shared: SecretRecord | None) -> None:
    if "scope" not in {f.name for f in fields(credential)}:  # type: ignore[arg-type]
        raise SecretFormatError(
            f"kong_auth.task_scopes applies only to flows that request a scope, not flow {credential.flow!r}"
        )
    if shared is None:
        return
    granted = scope_set(shared_fields(shared).get("scope"))
    for i, entry in enumerate(entries):
        if not granted or not scope_set(entry.scope) <= granted:
            raise SecretFormatError(
                f"kong_auth.task_scopes[{i}].scope must be within the shared credential's scope "
                f"({' '.join(sorted(granted)) or 'none'})"
            )


def _scope_string(value: Any, where: str) -> str:
    if isinstance(value, list) and value and all(isinstance(s, str) for s in value):
        value = " ".join(value)
    if not isinstance(value, str) or not value.split():
        raise SecretFormatError(f"{where} must be a non-empty string or list of strings")
    return " ".join(value.split())


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise SecretFormatError(f"{where} must be a non-empty list of glob patterns")
    return tuple(value)


@dataclass(frozen=True)
class KongConnection:
    """One version of a Kong connection: its secret, what kong_auth says, and the flow minting its tokens."""

    record: SecretRecord
    auth: KongAuth
    flow: TokenFlow

    @property
    def credential(self) -> Credential:
        return self.auth.credential

    @property
    def header_name(self) -> str:
        return str(self.auth.credential.header_name)

    def check_access(self, conn_id: str, task: TaskIdentity | None) -> None:
        """Raise AccessDenied unless allowed_dags admits the running task's dag_id: the connection's own and
        those of its shared credential, both."""
        auth = self.auth
        if auth.allowed_dags is not None:
            _check_dags(conn_id, task, auth.allowed_dags, "allowed_dags")
        if auth.credential_allowed_dags is not None:
            where = f"allowed_dags of its shared credential at {auth.credentials_path}"
            _check_dags(conn_id, task, auth.credential_allowed_dags, where)

    def conn_value(self, token: Token, conn_id: str, extra_headers: Mapping[str, str]) -> str:
        """The JSON Airflow gets back, with token in the auth header."""
        scheme = self.auth.credential.header_scheme
        return kong_conn_value(
            self.record.data,
            header_name=self.header_name,
            header_value=f"{scheme} {token.value}" if scheme else token.value,
            conn_id=conn_id,
            extra_headers=extra_headers,
        )


def _check_dags(conn_id: str, task: TaskIdentity | None, patterns: tuple[str, ...], where: str) -> None:
    if task is None:
        raise AccessDenied(
            f"conn_id {conn_id!r} is restricted by {where} ({', '.join(patterns)}) and this resolution "
            "is outside any task (dag_id: none)"
        )
    if not any(fnmatchcase(task.dag_id, p) for p in patterns):
        raise AccessDenied(
            f"conn_id {conn_id!r} may not be used by dag_id {task.dag_id!r} ({where}: {', '.join(patterns)})"
        )


def parse_allowed_dags(value: Any, *, field_name: str = "kong_auth.allowed_dags") -> tuple[str, ...] | None:
    """None when the field is absent; else a non-empty tuple of glob patterns."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise SecretFormatError(f"{field_name} must be a non-empty list of dag_id patterns")
    return tuple(value)


def check_field_sizes(block: Mapping[str, Any]) -> None:
    """Refuse megabyte values up front, by field name (they would end up in headers and request bodies)."""
    for name, value in block.items():
        if len(json.dumps(value)) > MAX_FIELD_CHARS:
            raise SecretFormatError(f"kong_auth.{name} is longer than {MAX_FIELD_CHARS} characters")


def plain_conn_value(data: dict[str, Any]) -> str:
    """Exactly what Airflow's VaultBackend.get_conn_value returns for a secret without kong_auth."""
    uri = data.get("conn_uri")
    if uri:
        return str(uri)
    return json.dumps(data)


def check_kong_connection_fields(data: dict[str, Any], *, allow_insecure_http: bool = False) -> None:
    """Refuse, before any token is minted, a Kong connection that could not be returned, or that would send its
    credential in clear to a host that is not loopback."""
    if data.get("conn_uri"):
        raise SecretFormatError("kong_auth cannot be combined with conn_uri; store the connection as JSON fields")
    _extra_dict(data.get("extra"))
    port = data.get("port")
    if port not in (None, "") and not (
        (isinstance(port, int) and not isinstance(port, bool)) or (isinstance(port, str) and port.isdigit())
    ):
        raise SecretFormatError("port must be an integer")
    check_gateway_scheme(data, allow_insecure_http=allow_insecure_http)


def gateway_scheme(data: Mapping[str, Any]) -> tuple[str, str, str]:
    """(scheme, field, hostname) HttpHook will use for this connection: a scheme written into ``host`` wins (the
    hook then ignores ``schema``), else ``schema``, else ``https`` (what :func:`kong_conn_value` returns)."""
    host = data.get("host")
    host = host.strip() if isinstance(host, str) else ""
    schema = data.get("schema")
    if "://" in host:
        scheme, field_name, url = host.split("://", 1)[0], "host", host
    else:
        scheme = schema.strip() if isinstance(schema, str) and schema.strip() else "https"
        field_name, url = "schema", f"{scheme}://{host}"
    try:
        hostname = urlsplit(url).hostname or ""
    except ValueError:
        hostname = ""
    return scheme.lower(), field_name, hostname


def check_gateway_scheme(data: Mapping[str, Any], *, allow_insecure_http: bool) -> None:
    """Refuse ``http`` to a host that is not loopback (127.0.0.0/8, ::1, localhost) unless allowed."""
    scheme, field_name, hostname = gateway_scheme(data)
    if scheme != "http" or allow_insecure_http or (hostname and is_loopback(hostname)):
        return
    where = "schema is http" if field_name == "schema" else "host is an http:// URL"
    raise SecretFormatError(
        f"{where}: the credential would cross the network in clear to host {hostname or '(none)'}, which is not"
        " loopback; use https (a missing schema defaults to https), or set the backend kwarg allow_insecure_http"
        " to true"
    )


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
    but never the auth header. A missing ``schema`` becomes ``https``; an auth header other than
    ``Authorization`` adds ``"allow_redirects": false`` unless the secret's extra sets ``allow_redirects``.
    """
    if data.get("conn_uri"):
        raise SecretFormatError("kong_auth cannot be combined with conn_uri; store the connection as JSON fields")
    out = {k: v for k, v in data.items() if k != "kong_auth"}
    for name in ("login", "password"):
        if out.get(name):
            # HttpHook switches to Basic auth when login is set, replacing the bearer header.
            log.warning("kong-secrets-backend: conn_id %s: ignoring %s, Kong auth replaces it", conn_id, name)
        out.pop(name, None)
    if not (isinstance(out.get("schema"), str) and out["schema"].strip()):
        out["schema"] = "https"  # HttpHook's default is http: a credential must not travel in clear by default
    extra = _extra_dict(out.get("extra"))
    if header_name.lower() != REDIRECT_SAFE_HEADER and "allow_redirects" not in extra:
        # requests and aiohttp re-send every header but Authorization to whatever origin a redirect names
        extra["allow_redirects"] = False
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
