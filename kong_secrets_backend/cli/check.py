"""``kong-secrets-backend check CONN_ID``: resolve one connection the way a worker would, and say what happened.

The settings are the ones Airflow's workers use (``[workers] secrets_backend`` / ``secrets_backend_kwargs``
first, then ``[secrets] backend`` / ``backend_kwargs``, plus Airflow's per-key
``AIRFLOW__<SECTION>__<KWARGS>_KWARG__<NAME>`` overrides). The resolution is the backend's own
``get_conn_value``; the report holds the source path and version, the flow, the token's claims (sub, aud,
scope, exp, kid) and the cache state, never the token or a credential. ``probe`` sends one request with the
returned connection and keeps only the status and the gateway's rate-limit and diagnostic headers. It follows
redirects as the task would (the connection's ``allow_redirects``, default true, and ``max_redirects``), but never
sends the credential's header to another origin.

Exit codes: 0 a token was obtained (and the probe, if any, was not refused); 1 misconfigured (settings,
secret, conn_id, endpoint); 2 refused (Vault or the IdP refused our credentials, allowed_dags refused the
DAG, the gateway answered 401/403); 3 unreachable (timeouts, connection errors, 5xx, a peer answering nonsense).
A resolution error's exit code comes from its category (``EXIT_CODES``); the report's ``error`` holds the
detailed ``reason``, the ``message`` and, when the backend raised an error, its ``category``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kong_secrets_backend.airflow_bridge.task import TaskIdentity, task_override
from kong_secrets_backend.errors import ConfigError, ErrorCategory, KongAuthError
from kong_secrets_backend.resolver import Resolution
from kong_secrets_backend.tokens import Origin

EXIT_OK = 0
EXIT_MISCONFIGURED = 1
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
STATUS_NAMES = {
    EXIT_OK: "ok",
    EXIT_MISCONFIGURED: "misconfigured",
    EXIT_REFUSED: "refused",
    EXIT_UNREACHABLE: "unreachable",
}
# The exit code of a resolution error, by its category (errors.py decides the category).
EXIT_CODES = {
    ErrorCategory.CONFIG: EXIT_MISCONFIGURED,
    ErrorCategory.SECRET: EXIT_MISCONFIGURED,
    ErrorCategory.SECRET_ID: EXIT_MISCONFIGURED,
    ErrorCategory.INTERNAL: EXIT_MISCONFIGURED,
    ErrorCategory.ACCESS_DENIED: EXIT_REFUSED,
    ErrorCategory.SOURCE_REFUSED: EXIT_REFUSED,
    ErrorCategory.IDENTITY_PROVIDER_REFUSED: EXIT_REFUSED,  # invalid_client, unauthorized_client, invalid_scope, ...
    ErrorCategory.SOURCE: EXIT_UNREACHABLE,
    ErrorCategory.IDENTITY_PROVIDER: EXIT_UNREACHABLE,  # 5xx, redirects, oversized or unparsable answers
    ErrorCategory.DEADLINE: EXIT_UNREACHABLE,
}

BACKEND_CLASS = "kong_secrets_backend.KongSecretsBackend"
CHECK_TASK_ID = "kong-secrets-backend-check"  # X-Airflow-Task-Id of a --dag-id check (shows in Kong's logs)
CLAIMS = ("sub", "aud", "scope", "exp", "kid")
PROBE_TIMEOUT = 10.0

# Extras that HttpHook treats as request options rather than headers (airflow.providers.http.hooks.http).
HTTP_HOOK_OPTIONS = frozenset(
    {
        "stream",
        "cert",
        "proxies",
        "proxy",
        "timeout",
        "verify",
        "verify_ssl",
        "allow_redirects",
        "max_redirects",
        "trust_env",
        "check_response",
        "srv_lookup",
    }
)
# Response headers worth showing: Kong's rate limiting, auth challenges, and where the answer came from.
_SHOWN_HEADER_PREFIXES = ("ratelimit-", "x-ratelimit-", "x-kong-")
_SHOWN_HEADERS = frozenset({"retry-after", "www-authenticate", "via", "location", "server"})


# -- settings -------------------------------------------------------------------------------------------


@dataclass
class BackendSettings:
    """Which backend class and kwargs Airflow's workers would use, and where they came from."""

    class_path: str | None
    section: str
    option: str
    kwargs_option: str
    kwargs: dict[str, Any] = field(repr=False)
    overrides: tuple[str, ...] = ()  # names set by per-key environment variables
    problem: str | None = None

    @property
    def origin(self) -> str:
        return f"[{self.section}] {self.option}"


def airflow_backend_settings(conf: Any = None) -> BackendSettings:
    """Read the settings like Airflow 3's ``_get_custom_secret_backend(worker_mode=True)`` does."""
    if conf is None:
        from kong_secrets_backend.airflow_bridge.compat import _conf

        conf = _conf()
    section, option, kwargs_option = "workers", "secrets_backend", "secrets_backend_kwargs"
    class_path = _conf_str(conf, section, option)
    if not class_path:
        section, option, kwargs_option = "secrets", "backend", "backend_kwargs"
        class_path = _conf_str(conf, section, option)
    raw = _conf_str(conf, section, kwargs_option)
    kwargs: dict[str, Any] = {}
    problem = None
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            parsed = None
            problem = f"[{section}] {kwargs_option} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        if isinstance(parsed, dict):
            kwargs = parsed
        elif problem is None:
            problem = f"[{section}] {kwargs_option} must be a JSON object, not {type(parsed).__name__}"
        if problem:
            problem += "; Airflow would ignore it and build the backend with no kwargs"
    prefix = f"AIRFLOW__{section.upper()}__{kwargs_option.replace('_kwargs', '_kwarg').upper()}__"
    overrides = {k[len(prefix) :].lower(): v for k, v in os.environ.items() if k.startswith(prefix) and k != prefix}
    kwargs.update(overrides)
    return BackendSettings(
        class_path=class_path or None,
        section=section,
        option=option,
        kwargs_option=kwargs_option,
        kwargs=kwargs,
        overrides=tuple(sorted(overrides)),
        problem=problem,
    )


def _conf_str(conf: Any, section: str, key: str) -> str:
    try:
        value = conf.get(section, key, fallback="")
    except Exception:
        return ""
    return (value or "").strip()


# -- the report -----------------------------------------------------------------------------------------


@dataclass
class TokenInfo:
    claims: dict[str, Any]
    expires_at: str | None
    expires_in: float | None
    obtained: str  # "minted" | "cache" | "static"
    refresh_in: float | None = None


@dataclass
class ProbeResult:
    method: str
    url: str
    status: int | None = None
    reason: str | None = None
    elapsed_ms: float | None = None
    rate_limit: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    error: str | None = None
    redirected_to: str | None = None  # the URL that answered, when redirects were followed


@dataclass
class CheckReport:
    conn_id: str
    exit_code: int = EXIT_OK
    backend: dict[str, Any] = field(default_factory=dict)
    dag_id: str | None = None
    searched: str | None = None
    secret_path: str | None = None
    secret_version: str | None = None
    flow: str | None = None
    header: str | None = None
    token: TokenInfo | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    probe: ProbeResult | None = None
    error: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return STATUS_NAMES.get(self.exit_code, "error")

    def fail(self, exit_code: int, reason: str, message: str, category: ErrorCategory | None = None) -> CheckReport:
        self.exit_code = exit_code
        self.error = {"reason": reason, "message": message}
        if category is not None:
            self.error["category"] = category.value
        return self

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data: URLs without userinfo or query, control characters escaped."""
        out: dict[str, Any] = scrub(asdict(self))
        out["status"] = self.status
        out["ok"] = self.exit_code == EXIT_OK
        return out

    def safe(self) -> CheckReport:
        """A copy fit to print: every string scrubbed (:func:`scrub`), whatever peer or setting it came from."""
        data = scrub(asdict(self))
        token = TokenInfo(**data["token"]) if data["token"] is not None else None
        probe = ProbeResult(**data["probe"]) if data["probe"] is not None else None
        return CheckReport(**{**data, "token": token, "probe": probe})


# -- what may be printed --------------------------------------------------------------------------------

# A URL inside any text: scheme://, then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"""\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s'"<>`]*""")
_REDIS_SCHEMES = ("redis", "rediss")


def safe_url(url: str) -> str:
    """``scheme://host:port/path`` without userinfo, query or fragment (where passwords and tokens hide);
    a Redis URL shows its port and database even when they are the defaults (``redis://host:6379/0``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port = None
        try:
            parts = urlsplit(url)
        except ValueError:
            return "<a URL that does not parse>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    path = parts.path
    scheme = parts.scheme.lower()
    if scheme in _REDIS_SCHEMES:  # the path is a database number, or it is not shown
        port = port or 6379
        path = path if path.strip("/").isdigit() else "/0"
    shown = f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"
    return shown


def escape_controls(text: str) -> str:
    """Control and other non-printable characters (ESC, CR, bidi overrides...) as visible escapes."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def scrub_text(text: str) -> str:
    """One string fit to print: every URL in it shown by :func:`safe_url`, control characters escaped."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: safe_url(m.group(0)), text)
    return escape_controls(text)


def scrub(value: Any) -> Any:
    """``value`` (JSON-like data) with every string, keys included, passed through :func:`scrub_text`."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


# -- running the check ----------------------------------------------------------------------------------


def run_check(
    conn_id: str,
    settings: BackendSettings,
    *,
    dag_id: str | None = None,
    probe: bool = False,
    endpoint: str | None = None,
    method: str = "GET",
    probe_timeout: float = PROBE_TIMEOUT,
) -> CheckReport:
    report = CheckReport(conn_id=conn_id, dag_id=dag_id)
    report.backend = {
        "class": settings.class_path,
        "from": settings.origin,
        "kwargs_from": f"[{settings.section}] {settings.kwargs_option}",
        "kwargs_overridden_by_env": list(settings.overrides),
    }
    if settings.problem:
        return report.fail(EXIT_MISCONFIGURED, "bad_config", settings.problem)
    if not settings.class_path:
        return report.fail(
            EXIT_MISCONFIGURED,
            "bad_config",
            "no secrets backend is configured: set [workers] secrets_backend or [secrets] backend",
        )
    backend_cls = _import_backend_class(settings.class_path, report)
    if backend_cls is None:
        return report
    from kong_secrets_backend.settings import parse_backend_kwargs
    from kong_secrets_backend.state import runtime_for

    try:
        config = parse_backend_kwargs(settings.kwargs)
    except ConfigError as exc:
        return report.fail(
            EXIT_MISCONFIGURED, exc.reason, f"invalid {report.backend['kwargs_from']}: {exc}", exc.category
        )
    runtime = runtime_for(config)
    report.backend.update(_describe_config(config))
    report.cache = {"mode": _shown_setting(config.token_cache), "shared_by": _cache_scope(config.token_cache)}
    with contextlib.suppress(Exception):
        report.searched = runtime.source.describe("connections", conn_id)

    backend = backend_cls(**settings.kwargs)
    started = time.monotonic()
    with _captured_warnings(report.notes), _as_dag(dag_id):
        try:
            found = backend.resolve(conn_id) if hasattr(backend, "resolve") else backend.get_conn_value(conn_id)
        except KongAuthError as exc:
            return report.fail(classify(exc), exc.reason, str(exc), exc.category)
        except Exception as exc:  # AirflowSecretsBackendAccessDenied (allowed_dags) and anything unexpected
            if type(exc).__name__ == "AirflowSecretsBackendAccessDenied" or isinstance(exc, PermissionError):
                return report.fail(EXIT_REFUSED, "access_denied", str(exc), ErrorCategory.ACCESS_DENIED)
            return report.fail(
                EXIT_MISCONFIGURED, "internal", f"unexpected {type(exc).__name__}", ErrorCategory.INTERNAL
            )
    elapsed = time.monotonic() - started
    if found is None:
        return report.fail(
            EXIT_MISCONFIGURED,
            "not_found",
            f"no secret for conn_id {conn_id!r} at {report.searched or 'the configured paths'} "
            f"(Airflow would report: The conn_id `{conn_id}` isn't defined)",
        )
    if not isinstance(found, Resolution):
        return report.fail(
            EXIT_MISCONFIGURED,
            "no_kong_auth",
            f"conn_id {conn_id!r} has no kong_auth: it is returned exactly as the official backend returns it, "
            "with no token",
        )
    value = found.conn_value
    report.secret_path, report.secret_version = found.path, found.version
    report.flow, report.header = found.flow, found.header_name
    report.token = _token_info(found, runtime)
    report.cache["state"] = {"minted": "minted by this command", "cache": "served from the cache"}.get(
        report.token.obtained, "not cached (static credential)"
    )
    report.cache["tier"] = found.cache_tier
    report.cache["resolution_ms"] = round(elapsed * 1000, 1)
    if probe:
        report.probe = probe_connection(
            value, endpoint=endpoint, method=method, timeout=probe_timeout, credential_header=found.header_name
        )
        report.exit_code = _probe_exit_code(report.probe)
        if report.exit_code != EXIT_OK:
            report.error = {"reason": "probe", "message": _probe_summary(report.probe)}
    return report


def classify(exc: KongAuthError) -> int:
    """The exit code for a resolution error: from its category alone."""
    return EXIT_CODES.get(exc.category, EXIT_MISCONFIGURED)


def _import_backend_class(class_path: str, report: CheckReport) -> type | None:
    from kong_secrets_backend.backend import KongSecretsBackend

    module_name, _, attr = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        report.fail(EXIT_MISCONFIGURED, "bad_config", f"cannot import {class_path}: {type(exc).__name__}")
        return None
    if not (isinstance(cls, type) and issubclass(cls, KongSecretsBackend)):
        report.fail(
            EXIT_MISCONFIGURED,
            "bad_config",
            f"{report.backend['from']} is {class_path}, not {BACKEND_CLASS}: nothing to check",
        )
        return None
    return cls


def _describe_config(config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"source": config.source, "token_cache": _shown_setting(config.token_cache)}
    vault = getattr(config, "vault", None)
    if vault is not None:
        out["vault_url"] = _shown_setting(vault.url)
        out["vault_auth_type"] = vault.auth.type
    aws = getattr(config, "aws", None)
    for name in ("region_name", "profile_name", "role_arn", "endpoint_url"):
        if aws is not None and getattr(aws, name, None):
            out[f"aws_{name}"] = _shown_setting(getattr(aws, name))
    return out


def _shown_setting(value: Any) -> Any:
    """A setting as the report shows it: a URL whole through :func:`safe_url` (a password in it may hold
    characters that end a URL in free text), anything else as it is."""
    return safe_url(value) if isinstance(value, str) and "://" in value else value


def _cache_scope(mode: str) -> str:
    if mode == "memory":
        return "this process only"
    if mode == "file":
        return "the processes of this host"
    if mode.startswith(("redis://", "rediss://")):
        return "every host using this Redis"
    return mode


def _token_info(resolution: Resolution, runtime: Any) -> TokenInfo:
    token = resolution.token
    claims = {k: token.claims[k] for k in CLAIMS if k in token.claims}
    if token.kid and "kid" not in claims:
        claims["kid"] = token.kid
    expires_at = getattr(token, "expires_at", None)
    finite = isinstance(expires_at, (int, float)) and math.isfinite(expires_at)
    if resolution.origin is Origin.STATIC or not finite:
        obtained = "static"
    else:
        obtained = "minted" if resolution.minted else "cache"
    info = TokenInfo(
        claims=claims,
        expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)) if finite else None,
        expires_in=round(token.remaining(), 1) if finite else None,
        obtained=obtained,
    )
    with contextlib.suppress(Exception):
        if finite:
            info.refresh_in = round(max(0.0, token.remaining() - runtime.broker.policy.advisory_margin(token)), 1)
    return info


@contextlib.contextmanager
def _as_dag(dag_id: str | None) -> Iterator[None]:
    if dag_id is None:
        yield
        return
    with task_override(TaskIdentity(dag_id=dag_id, task_id=CHECK_TASK_ID, run_id=None, try_number=None)):
        yield


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return  # the backend's ERROR record restates the error the report already holds
        with contextlib.suppress(Exception):
            self.sink.append(f"{record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def _captured_warnings(sink: list[str]) -> Iterator[None]:
    """The backend's WARNING records (secret-free by design) go into the report instead of stderr."""
    logger = logging.getLogger("kong_secrets_backend")
    handler = _ListHandler(sink)
    logger.addHandler(handler)
    propagate = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)


# -- the probe ------------------------------------------------------------------------------------------


def probe_connection(
    conn_value: str,
    *,
    endpoint: str | None,
    method: str = "GET",
    timeout: float = PROBE_TIMEOUT,
    credential_header: str | None = None,
) -> ProbeResult:
    """Send one request the way HttpHook would (extras as headers, redirects as ``allow_redirects`` says), except
    that ``credential_header`` is dropped, like ``Authorization``, when a redirect leaves the origin."""
    import requests

    data = json.loads(conn_value)
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra else {}
    url = _url(_base_url(data), endpoint)
    result = ProbeResult(method=method.upper(), url=_redact_userinfo(url))
    headers = {str(k): str(v) for k, v in extra.items() if k not in HTTP_HOOK_OPTIONS}
    session = _probe_session(credential_header)
    max_redirects = extra.get("max_redirects")
    if isinstance(max_redirects, int) and not isinstance(max_redirects, bool):
        session.max_redirects = max_redirects
    session.trust_env = _truthy(extra.get("trust_env", True))
    verify = extra.get("verify", extra.get("verify_ssl", True))
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
        verify = verify.strip().lower() == "true"
    try:
        started = time.monotonic()
        with session:
            resp = session.request(
                result.method,
                url,
                headers=headers,
                timeout=(min(5.0, timeout), timeout),
                allow_redirects=bool(extra.get("allow_redirects", True)),  # as HttpHook does
                verify=verify if isinstance(verify, (bool, str)) else True,
                proxies=extra.get("proxies") or extra.get("proxy") or None,
                cert=extra.get("cert") or None,
                stream=True,
            )
            with resp:
                result.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
                result.status, result.reason = resp.status_code, resp.reason
                if resp.history:
                    result.redirected_to = _redact_userinfo(resp.url)
                result.rate_limit, result.headers = _interesting_headers(resp.headers)
                if resp.status_code >= 400:
                    result.message = _gateway_message(resp)
    except requests.Timeout:
        result.error = f"no answer within {timeout:g}s"
    except requests.RequestException as exc:
        result.error = f"{type(exc).__name__} connecting to {urlsplit(url).netloc}"
    return result


def _probe_session(credential_header: str | None) -> Any:
    """A requests session that drops ``credential_header`` wherever requests drops ``Authorization``: on a
    redirect to another origin (requests itself keeps every other header)."""
    import requests

    class ProbeSession(requests.Session):
        def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
            if credential_header and self.should_strip_auth(response.request.url, prepared_request.url):
                prepared_request.headers.pop(credential_header, None)
            super().rebuild_auth(prepared_request, response)

    return ProbeSession()


def _probe_exit_code(probe: ProbeResult) -> int:
    status = probe.status
    if status is None or status >= 500:
        return EXIT_UNREACHABLE
    if status in (401, 403, 407):
        return EXIT_REFUSED
    if status == 429 or status < 400:
        return EXIT_OK  # 429: the gateway accepted the token, then rate-limited the consumer
    return EXIT_MISCONFIGURED  # 404 "no Route matched", 405, 400: the endpoint or method is wrong


def _probe_summary(probe: ProbeResult) -> str:
    if probe.status is None:
        return f"{probe.method} {probe.url} failed: {probe.error}"
    where = f" (redirected to {probe.redirected_to})" if probe.redirected_to else ""
    text = f"{probe.method} {probe.url}{where} answered {probe.status} {probe.reason or ''}".rstrip()
    return f"{text}: {probe.message}" if probe.message else text


def _base_url(data: Mapping[str, Any]) -> str:
    """HttpHook's base URL: ``host`` if it has a scheme, else ``schema://host[:port]`` (schema default http)."""
    host = str(data.get("host") or "")
    base = host if "://" in host else f"{data.get('schema') or 'http'}://{host}"
    port = data.get("port")
    if port and not urlsplit(base).port:
        base = f"{base}:{port}"
    return base


def _url(base: str, endpoint: str | None) -> str:
    if base and not base.endswith("/") and endpoint and not endpoint.startswith("/"):
        return f"{base}/{endpoint}"
    return base + (endpoint or "")


def _redact_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _interesting_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    rate_limit, other = {}, {}
    for name, value in headers.items():
        low = name.lower()
        if low.startswith(("ratelimit-", "x-ratelimit-")) or low == "retry-after":
            rate_limit[name] = value
        elif low in _SHOWN_HEADERS or low.startswith(_SHOWN_HEADER_PREFIXES):
            other[name] = value[:300]
    return rate_limit, other


def _gateway_message(resp: Any) -> str | None:
    """Kong's ``{"message": ...}`` (e.g. "no Route matched with those values"), short and printable only."""
    if "json" not in resp.headers.get("Content-Type", ""):
        return None
    with contextlib.suppress(Exception):
        body = resp.raw.read(4096, decode_content=True)
        message = json.loads(body).get("message")
        if isinstance(message, str) and len(message) <= 200 and message.isprintable():
            return message
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)
