"""The README's quickstart is well-formed: the secret is JSON with a kong_auth block, the airflow.cfg lines are
read as Airflow reads them and accepted by the backend's settings, and the check command line parses."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

from kong_secrets_backend.cli import build_parser
from kong_secrets_backend.settings import parse_backend_kwargs

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
QUICKSTART = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", QUICKSTART, flags=re.S)


def test_the_stored_secret_is_a_kong_connection() -> None:
    (script,) = blocks("bash")[:1]
    secret = json.loads(script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0])
    assert secret["conn_type"] == "http" and secret["schema"] == "https"
    assert {"token_url", "client_id", "client_secret"} <= set(secret["kong_auth"])
    assert "vault kv put secret/connections/kong_orders @kong_orders.json" in script


def test_the_airflow_cfg_lines_are_accepted() -> None:
    (ini,) = blocks("ini")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(ini)
    assert parser["workers"]["secrets_backend"] == "kong_secrets_backend.KongSecretsBackend"
    kwargs = json.loads(parser["workers"]["secrets_backend_kwargs"])
    kwargs["secret_id"] = "from-the-environment"  # AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__SECRET_ID
    parse_backend_kwargs(kwargs)


def test_it_ends_with_check_probe() -> None:
    command = blocks("bash")[-1].strip()
    assert QUICKSTART.rstrip().endswith("```") and command.startswith("kong-secrets-backend check ")
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.command, args.conn_id, args.probe) == ("check", "kong_orders", True)
