"""The ``kong-secrets-backend`` command (also ``python -m kong_secrets_backend``).

    kong-secrets-backend check CONN_ID [--json] [--dag-id DAG] [--probe [--endpoint PATH] [--method GET]]

See :mod:`kong_secrets_backend.cli.check` for what is checked and the exit codes. Output never holds the token
or a credential: only the claims sub, aud, scope, exp and kid, paths, versions and the gateway's headers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from kong_secrets_backend.cli.check import CheckReport


def build_parser() -> argparse.ArgumentParser:
    from kong_secrets_backend import __version__

    parser = argparse.ArgumentParser(
        prog="kong-secrets-backend",
        description="Tools for kong-secrets-backend, the Airflow secrets backend for Kong Gateway.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="resolve a connection with the settings Airflow's workers use and show what happened",
        description=(
            "Resolve CONN_ID with the backend settings Airflow's workers use ([workers] secrets_backend first, "
            "then [secrets] backend) and show the source path and version, the flow, the token's claims and the "
            "cache state. Never prints the token or a credential. Exit codes: 0 ok, 1 misconfigured, "
            "2 refused (auth), 3 unreachable."
        ),
    )
    check.add_argument("conn_id", metavar="CONN_ID")
    check.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    check.add_argument(
        "--dag-id", metavar="DAG", help="resolve as a task of this DAG would (for kong_auth.allowed_dags)"
    )
    check.add_argument(
        "--probe", action="store_true", help="call the connection's URL and show the status and rate-limit headers"
    )
    check.add_argument("--endpoint", metavar="PATH", help="path appended to the connection's URL for --probe")
    check.add_argument("--method", default="GET", choices=("GET", "HEAD", "OPTIONS"), help="method for --probe")
    check.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="timeout of the --probe request (default 10)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help(sys.stderr)
        return 1
    return check_command(args, sys.stdout)


def check_command(args: argparse.Namespace, out: TextIO) -> int:
    from kong_secrets_backend.cli.check import EXIT_MISCONFIGURED, CheckReport, airflow_backend_settings, run_check

    try:
        settings = airflow_backend_settings()
    except Exception as exc:  # importing Airflow builds its configured backends: that can fail on its own
        report = CheckReport(conn_id=args.conn_id).fail(
            EXIT_MISCONFIGURED,
            "bad_config",
            f"Airflow could not load its configuration ({type(exc).__name__}); `airflow config list` shows why",
        )
        return _emit(report, args, out)
    try:
        report = run_check(
            args.conn_id,
            settings,
            dag_id=args.dag_id,
            probe=args.probe,
            endpoint=args.endpoint,
            method=args.method,
            probe_timeout=args.timeout,
        )
    except Exception as exc:  # never a traceback: its text could quote a value
        report = CheckReport(conn_id=args.conn_id).fail(
            EXIT_MISCONFIGURED, "internal", f"unexpected {type(exc).__name__}"
        )
    return _emit(report, args, out)


def _emit(report: CheckReport, args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        json.dump(report.to_json(), out, indent=2, sort_keys=False, default=str)
        out.write("\n")
    else:
        out.write(render(report))
    out.flush()
    return report.exit_code


def render(report: CheckReport) -> str:
    """The human-readable report: one aligned line per fact (URLs without userinfo or query, control
    characters escaped: see ``CheckReport.safe``)."""
    report = report.safe()
    lines: list[tuple[str, str]] = []
    backend = report.backend
    if backend.get("class"):
        lines.append(("backend", f"{backend['class']}  (from {backend['from']}, kwargs from {backend['kwargs_from']})"))
    if backend.get("kwargs_overridden_by_env"):
        lines.append(("", "kwargs set by environment: " + ", ".join(backend["kwargs_overridden_by_env"])))
    if backend.get("source"):
        lines.append(("source", _source_line(backend)))
    if report.dag_id:
        lines.append(("dag_id", report.dag_id))
    if report.secret_path:
        version = report.secret_version or "unversioned"
        lines.append(("secret", f"{report.secret_path}  (version {version})"))
    elif report.searched:
        lines.append(("searched", report.searched))
    if report.flow:
        lines.append(("flow", f"{report.flow}  (header {report.header})"))
    token = report.token
    if token is not None:
        if token.claims:
            lines.append(("claims", "  ".join(f"{k}={_claim(v)}" for k, v in token.claims.items())))
        elif token.obtained != "static":
            lines.append(("claims", "none readable (not a JWT)"))
        if token.expires_in is not None:
            lines.append(("expires", f"in {token.expires_in:.0f}s  ({token.expires_at})"))
    if report.cache.get("state"):
        cache = report.cache
        refresh = f"; refresh due in {token.refresh_in:.0f}s" if token and token.refresh_in is not None else ""
        lines.append(("cache", f"{cache['mode']} ({cache['shared_by']}): {cache['state']}{refresh}"))
    probe = report.probe
    if probe is not None:
        if probe.status is None:
            lines.append(("probe", f"{probe.method} {probe.url} -> {probe.error}"))
        else:
            message = f"  {probe.message!r}" if probe.message else ""
            lines.append(("probe", f"{probe.method} {probe.url} -> {probe.status} {probe.reason or ''}{message}"))
            if probe.redirected_to:
                lines.append(("redirected", f"answered by {probe.redirected_to}"))
            if probe.rate_limit:
                lines.append(("rate limit", "  ".join(f"{k}: {v}" for k, v in probe.rate_limit.items())))
            for name, value in probe.headers.items():
                lines.append(("", f"{name}: {value}"))
    for note in report.notes:
        lines.append(("note", note))
    if report.error:
        lines.append(("error", f"{report.error['message']}  [{report.error['reason']}]"))
    width = max((len(k) for k, _ in lines), default=0)
    body = "".join(f"  {k.ljust(width)}  {v}\n" for k, v in lines)
    return f"kong-secrets-backend check {report.conn_id}: {report.status} (exit {report.exit_code})\n{body}"


def _source_line(backend: dict[str, Any]) -> str:
    if backend.get("source") == "vault":
        return f"vault {backend.get('vault_url') or '(VAULT_ADDR)'}  (auth_type {backend.get('vault_auth_type')})"
    details = ", ".join(f"{k.removeprefix('aws_')} {v}" for k, v in backend.items() if k.startswith("aws_"))
    return f"{backend['source']}" + (f"  ({details})" if details else "")


def _claim(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
