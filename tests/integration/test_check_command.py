"""`kong-secrets-backend check` on the real stack: what it shows, its exit codes, and that it never shows a secret.

Most cases call the command's `main()` in-process with the settings in Airflow's environment variables (Airflow's
conf reads them on every lookup); one runs the installed console script against examples/airflow-cfg.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.moto import Moto
from devstack.procs import free_port
from devstack.stack import ORDERS_AUDIENCE, ORDERS_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend, cli
from tests.conftest import assert_no_secrets

pytestmark = pytest.mark.usefixtures("fresh_process_state")

OURS = "kong_secrets_backend.KongSecretsBackend"
EXAMPLE_CFG = Path(__file__).resolve().parents[2] / "examples" / "airflow-cfg" / "vault-workers.cfg"

Check = Callable[..., tuple[int, str]]


@pytest.fixture
def check(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Check]:
    """Run `kong-secrets-backend check ARGS...` in-process with [workers] settings for the stack (or `kwargs`)."""
    from kong_secrets_backend.airflow_bridge.compat import _conf

    _conf()  # import Airflow before the environment names our backend (its import builds the configured one)
    for name in list(os.environ):
        if name.startswith(("AIRFLOW__WORKERS__SECRETS_BACKEND", "AIRFLOW__SECRETS__BACKEND")):
            monkeypatch.delenv(name)

    def run(*args: str, kwargs: dict[str, Any] | None = None) -> tuple[int, str]:
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", json.dumps(kwargs or stack.backend_kwargs()))
        code = cli.main(["check", *args])
        out, err = capsys.readouterr()
        assert not err, err
        return code, out

    yield run


def new_conn_id() -> str:
    return f"kong_{uuid.uuid4().hex[:10]}"


def gateway_tokens(stack: Stack) -> list[str]:
    auth = (r["headers"].get("authorization", "") for r in stack.gateway.received())
    return [a.removeprefix("Bearer ") for a in auth if a]


def cached_token(stack: Stack, conn_id: str) -> str:
    """The token this process holds for conn_id (the same one the command was given), without printing it."""
    value = KongSecretsBackend(**stack.backend_kwargs()).get_conn_value(conn_id)
    assert value is not None
    return str(json.loads(value)["extra"]["Authorization"]).removeprefix("Bearer ")


def test_check_shows_path_version_flow_claims_and_cache_state_but_never_the_token(stack: Stack, check: Check) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    version = stack.put(f"connections/{cid}", stack.kong_connection())  # version 2
    stack.idp.reset_counts()

    code, out = check(cid, "--json")
    report = json.loads(out)
    assert code == report["exit_code"] == 0 and report["status"] == "ok"
    assert report["backend"]["from"] == "[workers] secrets_backend"
    assert (report["secret_path"], report["secret_version"]) == (f"secret/connections/{cid}", str(version))
    assert (report["flow"], report["header"]) == ("client_credentials", "Authorization")
    claims = report["token"]["claims"]
    assert claims["sub"] == "airflow-orders" and claims["aud"] == ORDERS_AUDIENCE and claims["scope"] == ORDERS_SCOPE
    assert claims["kid"] == stack.idp.kid and isinstance(claims["exp"], int)
    assert set(claims) == {"sub", "aud", "scope", "exp", "kid"}
    assert report["token"]["obtained"] == "minted" and report["cache"]["state"] == "minted by this command"
    assert 0 < report["token"]["refresh_in"] < report["token"]["expires_in"] <= 300

    code, again = check(cid)  # the human form, and this process's cache now holds the token
    assert code == 0
    assert f"secret/connections/{cid}  (version {version})" in again
    assert "memory (this process only): served from the cache" in again
    assert stack.idp.token_requests() == 1
    assert_no_secrets(out + again, [*stack.planted_secrets(), cached_token(stack, cid)])


def test_probe_shows_status_and_rate_limit_headers_and_the_dag_id_reaches_the_gateway(
    stack: Stack, check: Check
) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    code, out = check(cid, "--probe", "--endpoint", "/orders", "--dag-id", "orders_daily")
    assert code == 0, out
    assert "-> 200 OK" in out and "ratelimit-limit: 1000" in out.lower() and "ratelimit-remaining" in out.lower()
    assert "dag_id      orders_daily" in out
    upstream = stack.gateway.received()[-1]
    assert upstream["path"] == "/orders"
    assert upstream["headers"]["x-consumer-username"] == "airflow-orders"
    assert upstream["headers"]["x-airflow-dag-id"] == "orders_daily"
    assert upstream["headers"]["x-airflow-task-id"] == "kong-secrets-backend-check"
    assert_no_secrets(out, [*stack.planted_secrets(), *gateway_tokens(stack)])


def test_a_token_the_gateway_refuses_is_exit_2_with_its_challenge(stack: Stack, check: Check) -> None:
    cid = new_conn_id()  # a real token, but for the reports scope: the orders route answers 403 insufficient_scope
    stack.put(f"connections/{cid}", stack.kong_connection("airflow-reports", scope="reports:read"))
    code, out = check(cid, "--probe", "--endpoint", "/orders", "--json")
    report = json.loads(out)
    assert code == 2 and report["status"] == "refused"
    assert report["probe"]["status"] == 403 and report["probe"]["message"] == "Forbidden"
    headers = {k.lower(): v for k, v in report["probe"]["headers"].items()}
    assert 'error="insufficient_scope"' in headers["www-authenticate"]
    assert_no_secrets(out, [*stack.planted_secrets(), *gateway_tokens(stack)])


def test_an_unrouted_endpoint_is_a_misconfiguration(stack: Stack, check: Check) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    code, out = check(cid, "--probe", "--endpoint", "/nowhere")
    assert code == 1
    assert "-> 404 Not Found  'no Route matched with those values'" in out


def test_credentials_the_idp_refuses_are_exit_2_naming_the_oauth_error(stack: Stack, check: Check) -> None:
    cid = new_conn_id()
    wrong = f"wrong-secret-{uuid.uuid4().hex}"
    stack.put(f"connections/{cid}", stack.kong_connection(client_secret=wrong))
    code, out = check(cid)
    assert code == 2
    assert "invalid_client" in out and f"secret/connections/{cid}" in out
    assert_no_secrets(out, [*stack.planted_secrets(), wrong])


def test_an_unreachable_vault_is_exit_3(stack: Stack, check: Check) -> None:
    code, out = check("kong_orders", "--json", kwargs=stack.backend_kwargs(url=f"http://127.0.0.1:{free_port()}"))
    report = json.loads(out)
    assert code == 3 and report["status"] == "unreachable"
    assert report["error"]["reason"] == "vault_unreachable"


def test_an_unknown_conn_id_names_the_paths_and_airflows_isnt_defined_message(check: Check) -> None:
    cid = new_conn_id()
    code, out = check(cid)
    assert code == 1
    assert f"no secret for conn_id '{cid}' at secret/connections/{cid}" in out
    assert f"The conn_id `{cid}` isn't defined" in out


def test_a_plain_connection_has_no_token_to_check(stack: Stack, check: Check) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", {"conn_type": "http", "host": "example.com"})
    code, out = check(cid)
    assert code == 1 and "has no kong_auth" in out


def test_dag_id_is_what_allowed_dags_checks(stack: Stack, check: Check) -> None:
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection(allowed_dags=["orders_*"]))
    assert check(cid, "--dag-id", "orders_daily")[0] == 0
    code, out = check(cid, "--dag-id", "reports_daily")
    assert code == 2 and "reports_daily" in out and "[access_denied]" in out
    assert check(cid)[0] == 2  # outside any task


def test_console_script_reads_the_example_workers_cfg(stack: Stack, tmp_path: Path) -> None:
    """The installed `kong-secrets-backend` with examples/airflow-cfg/vault-workers.cfg as airflow.cfg; the Vault
    address and AppRole come in through Airflow's per-key environment overrides, as the example says."""
    cid = new_conn_id()
    stack.put(f"connections/{cid}", stack.kong_connection())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VAULT_", "BAO_"))}
    prefix = "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__"
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW_CONFIG": str(EXAMPLE_CFG),
            f"{prefix}URL": stack.bao.url,
            f"{prefix}ROLE_ID": stack.role_id,
            f"{prefix}SECRET_ID": stack.secret_id,
            # the example's [secrets] VaultBackend is built at Airflow's import: give it a reachable Vault too
            "AIRFLOW__SECRETS__BACKEND_KWARG__URL": stack.bao.url,
            "AIRFLOW__SECRETS__BACKEND_KWARG__ROLE_ID": stack.role_id,
        }
    )
    script = Path(sys.executable).with_name("kong-secrets-backend")
    done = subprocess.run(
        [str(script), "check", cid, "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["backend"]["kwargs_overridden_by_env"] == ["role_id", "secret_id", "url"]
    assert report["secret_path"] == f"secret/connections/{cid}" and report["token"]["claims"]["sub"] == "airflow-orders"
    assert_no_secrets(done.stdout + done.stderr, stack.planted_secrets())

    module = subprocess.run(
        [sys.executable, "-m", "kong_secrets_backend", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout.startswith("kong-secrets-backend ")


def test_check_on_aws_secrets_manager_shows_the_secret_name_and_version_id(
    stack: Stack, aws_env: Moto, check: Check, caplog: pytest.LogCaptureFixture
) -> None:
    # botocore logs request and response bodies at DEBUG (this test's put_secret, and the secret it reads back):
    # keep them out of the session's raw-record leak scan; that path belongs to the AWS source's own tests.
    caplog.set_level(logging.INFO, logger="botocore")  # restored (with setLevel) after the test
    cid = new_conn_id()
    host, port = stack.gateway_host_port()
    secret = {"conn_type": "http", "host": host, "port": port, "schema": "http", "kong_auth": stack.kong_auth()}
    version_id = aws_env.put_secret(f"airflow/connections/{cid}", secret)
    kwargs = {"source": "aws", "region_name": "eu-central-1", "endpoint_url": aws_env.url}
    code, out = check(cid, "--json", "--probe", "--endpoint", "/orders", kwargs=kwargs)
    report = json.loads(out)
    assert code == 0, out
    assert report["backend"]["source"] == "aws" and report["backend"]["aws_endpoint_url"] == aws_env.url
    assert report["secret_path"].endswith(f"airflow/connections/{cid}")
    assert report["secret_version"] == version_id
    assert report["token"]["claims"]["sub"] == "airflow-orders" and report["probe"]["status"] == 200
    assert_no_secrets(out, [*stack.planted_secrets(), *gateway_tokens(stack)])
