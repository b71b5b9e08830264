"""A Vault user never imports boto3 and an AWS user never imports hvac: checked in a fresh interpreter after a
full resolution (secret read, token minted) with each source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from devstack.moto import Moto
from devstack.stack import Stack
from tests.conftest import ROOT

SCRIPT = """
import json, sys
from airflow.sdk.definitions.connection import Connection
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class

backend = KongSecretsBackend(**json.loads(sys.argv[1]))
set_connection_class(backend, Connection)
conn = backend.get_connection(sys.argv[2])
assert conn is not None and conn.extra_dejson["Authorization"].startswith("Bearer "), conn
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"hvac", "boto3", "botocore", "s3transfer"})))
"""


@pytest.fixture(scope="module")
def imported(stack: Stack, moto: Moto) -> dict[str, list[str]]:
    """source -> the AWS/Vault SDK packages a fresh interpreter imported to resolve a Kong connection.

    Both interpreters run at once (each spends seconds importing Airflow).
    """
    cid = f"lazy_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", stack.kong_connection())
    host, port = stack.gateway_host_port()
    moto.put_secret(
        f"airflow/connections/{cid}", {"conn_type": "http", "host": host, "port": port, "kong_auth": stack.kong_auth()}
    )
    runs = {
        "vault": (stack.backend_kwargs(), {}),
        "aws": ({"source": "aws", "region_name": "eu-central-1", "endpoint_url": moto.url}, moto.env()),
    }
    procs = {
        source: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, json.dumps(kwargs), cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env},
        )
        for source, (kwargs, env) in runs.items()
    }
    out = {}
    for source, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{source}: {stderr[-3000:]}"
        out[source] = list(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_source_vault_never_imports_boto3(imported: dict[str, list[str]]) -> None:
    assert imported["vault"] == ["hvac"]


def test_source_aws_never_imports_hvac(imported: dict[str, list[str]]) -> None:
    assert "hvac" not in imported["aws"] and {"boto3", "botocore"} <= set(imported["aws"])
