"""The files in examples/ do what they say: the Vault policy and AppRole script against OpenBao, the airflow.cfg
snippets through the backend's own parser (and the official backends' signatures), the IAM policy and the
laptop docker-compose file (not run here: syntax and references only)."""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import yaml
from airflow.sdk.definitions.connection import Connection

from devstack.openbao import bao_binary
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.settings import parse_backend_kwargs
from tests.leak_scan import LEAKS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CFG = EXAMPLES / "airflow-cfg"


def cfg_kwargs(path: Path) -> dict[str, dict[str, Any]]:
    """{section: {"class": ..., "kwargs": {...}}} of an airflow.cfg snippet, read as Airflow reads it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    out = {}
    for section, (cls_key, kwargs_key) in {
        "workers": ("secrets_backend", "secrets_backend_kwargs"),
        "secrets": ("backend", "backend_kwargs"),
    }.items():
        if parser.has_section(section):
            out[section] = {"class": parser[section][cls_key], "kwargs": json.loads(parser[section][kwargs_key])}
    return out


# -- Vault policy and AppRole script, against the real OpenBao ------------------------------------------


@pytest.mark.usefixtures("fresh_process_state")
def test_vault_policy_and_approle_script_give_the_backend_exactly_what_it_reads(stack: Stack, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    mount, role, policy = f"approle-{suffix}", f"airflow-kong-{suffix}", f"kong-secrets-backend-{suffix}"
    secret_id_file = tmp_path / "airflow-kong.secret-id"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(
        VAULT_ADDR=stack.bao.url,
        VAULT_TOKEN=stack.bao.root_token,
        VAULT_BIN=bao_binary(),
        APPROLE_MOUNT=mount,
        HOME=str(tmp_path),
    )
    script = [str(EXAMPLES / "vault" / "setup-approle.sh"), role, policy, str(secret_id_file)]
    for _ in range(2):  # the second run finds the auth method enabled and updates in place
        done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    secret_id = secret_id_file.read_text().strip()
    LEAKS.plant(secret_id)
    assert stat.S_IMODE(secret_id_file.stat().st_mode) == 0o600
    assert secret_id not in done.stdout + done.stderr
    [line] = done.stdout.splitlines()
    role_id = line.removeprefix("role_id=")

    cid = f"kong_{suffix}"
    # The shared credential holds the endpoint and the client; the connection only names it.
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": f"kong-credentials/{cid}"}))
    stack.put(f"kong-credentials/{cid}", stack.kong_auth())
    stack.put(f"elsewhere/{cid}", {"value": "not for airflow"})

    client = hvac.Client(url=stack.bao.url)
    client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=mount)
    kv = client.secrets.kv.v2
    assert kv.read_secret_version(path=f"connections/{cid}", mount_point="secret", raise_on_deleted_version=True)
    for denied in (
        lambda: kv.read_secret_version(path=f"elsewhere/{cid}", mount_point="secret", raise_on_deleted_version=True),
        lambda: kv.create_or_update_secret(path=f"connections/{cid}", secret={"x": "y"}, mount_point="secret"),
        lambda: kv.list_secrets(path="connections", mount_point="secret"),
        lambda: kv.read_secret_metadata(path=f"connections/{cid}", mount_point="secret"),
    ):
        with pytest.raises(hvac.exceptions.Forbidden):
            denied()

    # The backend itself, logged in with that AppRole, resolves a Kong connection with a shared credential.
    backend = KongSecretsBackend(
        url=stack.bao.url, auth_type="approle", role_id=role_id, secret_id=secret_id, auth_mount_point=mount
    )
    backend._set_connection_class(Connection)
    conn = backend.get_connection(cid)
    assert conn is not None and conn.extra_dejson["Authorization"].startswith("Bearer ey")


# -- airflow.cfg snippets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vault.cfg", "vault-workers.cfg", "aws.cfg", "aws-workers.cfg"])
def test_airflow_cfg_snippets_configure_the_backend_and_parse(name: str) -> None:
    sections = cfg_kwargs(CFG / name)
    ours = "workers" if "workers" in name else "secrets"
    assert sections[ours]["class"] == "kong_secrets_backend.KongSecretsBackend"
    kwargs = sections[ours]["kwargs"]
    assert "secret_id" not in kwargs  # secrets come from the environment, not the file
    config = parse_backend_kwargs(kwargs)
    assert config.source == ("aws" if name.startswith("aws") else "vault")


def test_the_workers_variant_keeps_an_official_backend_for_the_other_components() -> None:
    for name in ("vault-workers.cfg", "aws-workers.cfg"):
        official = cfg_kwargs(CFG / name)["secrets"]
        module, _, cls_name = official["class"].rpartition(".")
        cls = getattr(__import__(module, fromlist=[cls_name]), cls_name)
        cls(**official["kwargs"])  # the official backend accepts them (its constructor makes no request)


# -- IAM policy -----------------------------------------------------------------------------------------


def test_iam_policy_grants_only_reads_of_the_configured_prefixes() -> None:
    policy = json.loads((EXAMPLES / "aws" / "iam-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    assert all(s["Effect"] == "Allow" for s in statements)
    [read] = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    kwargs = cfg_kwargs(CFG / "aws.cfg")["secrets"]["kwargs"]
    for prefix_kwarg in ("connections_prefix", "variables_prefix", "config_prefix"):
        assert any(r.endswith(f":secret:{kwargs[prefix_kwarg]}/*") for r in read["Resource"]), prefix_kwarg
    [kms] = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert "kms:ViaService" in kms["Condition"]["StringEquals"]  # only through Secrets Manager


# -- the laptop docker-compose file (not run here) ------------------------------------------------------


def test_laptop_compose_file_parses_and_its_local_files_exist() -> None:
    laptop = EXAMPLES / "laptop"
    compose = yaml.safe_load((laptop / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"vault", "vault-init", "keycloak", "kong", "airflow"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (laptop / source).exists(), source
    kong_config = compose["services"]["kong"]["environment"]["KONG_DECLARATIVE_CONFIG"]  # /kong/${KONG_CONFIG:-x}
    default = kong_config.split(":-")[1].rstrip("}")
    assert (EXAMPLES / "kong" / default).is_file(), default
    env = compose["services"]["airflow"]["environment"]
    assert env["AIRFLOW__WORKERS__SECRETS_BACKEND"] == "kong_secrets_backend.KongSecretsBackend"
    parse_backend_kwargs({**json.loads(env["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"]), "role_id": "r"})
    realm = json.loads((laptop / "keycloak-realm.json").read_text())
    kong_auth = json.loads((laptop / "kong_orders.kong_auth.json").read_text())
    [client] = [c for c in realm["clients"] if c["clientId"] == kong_auth["client_id"]]
    assert client["secret"] == kong_auth["client_secret"] and client["serviceAccountsEnabled"]
    assert f"/realms/{realm['realm']}/" in kong_auth["token_url"]
