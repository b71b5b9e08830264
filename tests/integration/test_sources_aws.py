"""source "aws": AWS Secrets Manager on a real moto server, Kong tokens from the stack's IdP through its gateway.

Client settings (region_name, profile_name, endpoint_url, role_arn through STS) are checked against the
official SecretsManagerBackend with the same kwargs; the corpus-wide comparison is in tests/differential.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend
from airflow.sdk.definitions.connection import Connection

from devstack.moto import Moto
from devstack.procs import free_port
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from kong_secrets_backend.errors import KongAuthError
from kong_secrets_backend.state import runtime_for
from kong_secrets_backend.transport.deadline import Deadline
from tests.conftest import assert_no_secrets
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state", "aws_env")


def name() -> str:
    return f"aws_{uuid.uuid4().hex[:10]}"


def kwargs(moto: Moto, **extra: Any) -> dict[str, Any]:
    return {"source": "aws", "region_name": "eu-central-1", "endpoint_url": moto.url, **extra}


def ours(**kw: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(**kw)
    set_connection_class(backend, Connection)
    return backend


def official(**kw: Any) -> SecretsManagerBackend:
    kw = {k: v for k, v in kw.items() if k != "source"}
    backend = SecretsManagerBackend(**kw)
    set_connection_class(backend, Connection)
    return backend


def kong_secret(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """A Kong connection in SecretsManagerBackend's JSON-fields form (with its aliases: server, engine)."""
    host, port = stack.gateway_host_port()
    return {
        "engine": "http",
        "server": host,
        "port": port,
        "schema": "http",
        "extra": {"Accept": "application/json"},
        "kong_auth": stack.kong_auth(**overrides),
    }


def test_kong_connection_on_aws_gets_a_token_the_gateway_accepts(stack: Stack, aws_env: Moto) -> None:
    cid = name()
    aws_env.put_secret(f"airflow/connections/{cid}", kong_secret(stack))
    conn = ours(**kwargs(aws_env)).get_connection(cid)
    assert conn is not None
    assert (conn.conn_type, conn.host, conn.schema) == ("http", "127.0.0.1", "http")
    assert not conn.login and not conn.password
    assert set(conn.extra_dejson) >= {"Accept", "Authorization"}
    resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
    assert resp.status_code == 200, resp.text
    assert "kong_auth" not in json.dumps(conn.extra_dejson)


def test_shared_credentials_path_is_another_secret_read_with_its_version_id(stack: Stack, aws_env: Moto) -> None:
    shared = f"kong/credentials/{name()}"
    first_version = aws_env.put_secret(shared, stack.kong_auth())
    a, b = name(), name()
    for cid in (a, b):
        secret = kong_secret(stack)
        secret["kong_auth"] = {"credentials_path": shared}
        aws_env.put_secret(f"airflow/connections/{cid}", secret)
    backend = ours(**kwargs(aws_env))
    first_a, first_b = backend.get_connection(a), backend.get_connection(b)
    assert first_a is not None and first_b is not None
    for conn in (first_a, first_b):
        resp = requests.get(f"{stack.gateway.url}/orders", headers=dict(conn.extra_dejson), timeout=5)
        assert resp.status_code == 200, resp.text
    stack.idp.reset_counts()
    assert backend.get_connection(a).extra_dejson == first_a.extra_dejson  # type: ignore[union-attr]
    assert stack.idp.token_requests() == 0
    source = runtime_for(backend._config).source  # type: ignore[arg-type]
    deadline = Deadline(5)
    assert source.read_path(shared, deadline).version == first_version
    rotated = aws_env.put_secret(shared, stack.kong_auth())  # a rotation: a new AWSCURRENT VersionId
    assert source.read_path(shared, deadline).version == rotated != first_version


def test_only_the_awscurrent_version_is_read_never_a_pending_one(aws_env: Moto) -> None:
    var, cid = name(), name()
    aws_env.put_secret(f"airflow/variables/{var}", "current-value")
    aws_env.put_pending(f"airflow/variables/{var}", "pending-value")
    aws_env.put_secret(f"airflow/connections/{cid}", "http://current.example.com")
    aws_env.put_pending(f"airflow/connections/{cid}", "http://pending.example.com")
    backend = ours(**kwargs(aws_env))
    assert backend.get_variable(var) == "current-value"
    assert backend.get_conn_value(cid) == "http://current.example.com"


def test_role_arn_is_assumed_through_sts_as_secrets_manager_backend_does(aws_env: Moto) -> None:
    cid = name()
    aws_env.put_secret(f"airflow/connections/{cid}", {"user": "u", "password": "p", "host": "h", "engine": "postgres"})
    role_arn = aws_env.create_role("kong-secrets-reader")
    kw = kwargs(aws_env, role_arn=role_arn, service_config={"sts": {"endpoint_url": aws_env.url}})
    backend = ours(**kw)
    assert backend.get_conn_value(cid) == official(**kw).get_conn_value(cid) is not None
    client = runtime_for(backend._config).source._get_client()  # type: ignore[arg-type,attr-defined]
    frozen = client._request_signer._credentials.get_frozen_credentials()
    identity = (  # STS, asked with the credentials the source signs its requests with
        boto3.session.Session(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
            region_name="eu-central-1",
        )
        .client("sts", endpoint_url=aws_env.url)
        .get_caller_identity()
    )
    assert ":assumed-role/kong-secrets-reader/Airflow_SecretsManagerBackend__connection" in identity["Arn"]


def test_profile_name_selects_credentials_and_region_from_the_aws_config(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile kongtest]\nregion = eu-west-3\n"
        "aws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = profile-secret-key-value\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    LEAKS.plant("profile-secret-key-value")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)
    kw = {"source": "aws", "profile_name": "kongtest", "endpoint_url": aws_env.url}
    cid = name()
    aws_env.client().create_secret(Name=f"airflow/variables/{cid}", SecretString="in-eu-west-3")
    # moto keeps secrets per region: the variable above is in eu-central-1, so the profile's region finds nothing
    backend = ours(**kw)
    assert backend.get_variable(cid) is None is official(**kw).get_variable(cid)
    client = runtime_for(backend._config).source._get_client()  # type: ignore[arg-type,attr-defined]
    assert client.meta.region_name == "eu-west-3" == official(**kw).client.meta.region_name
    assert client._request_signer._credentials.get_frozen_credentials().access_key == "AKIAPROFILEKEY000001"


def test_unreachable_endpoint_is_one_clear_error_within_the_deadline(
    aws_env: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    backend = ours(**kwargs(aws_env, endpoint_url=f"http://127.0.0.1:{free_port()}", deadline=2))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError) as info:
        backend.get_conn_value("some_conn")
    assert time.monotonic() - started < 4
    assert info.value.reason == "aws_unreachable"
    assert "AWS Secrets Manager unreachable reading airflow/connections/some_conn" in caplog.text


def test_missing_credentials_and_bad_json_are_named(
    stack: Stack, aws_env: Moto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cid, shared = name(), f"kong/credentials/{name()}"
    aws_env.put_secret(shared, "not json at all")
    secret = kong_secret(stack)
    secret["kong_auth"] = {"credentials_path": shared}
    aws_env.put_secret(f"airflow/connections/{cid}", secret)
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        ours(**kwargs(aws_env)).get_conn_value(cid)
    assert f"secret {shared} is not valid JSON" in caplog.text
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(KongAuthError, match="no AWS credentials found"):
        ours(**kwargs(aws_env, deadline=3)).get_conn_value(cid)
    assert_no_secrets(caplog.text, stack.planted_secrets())


def test_botocore_debug_logging_never_shows_a_secret_value(
    stack: Stack, aws_env: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    """botocore prints request and response bodies at DEBUG, before the masker knows the values in them."""
    cid, variable = name(), name()
    aws_env.put_secret(f"airflow/connections/{cid}", kong_secret(stack))
    aws_env.put_secret(f"airflow/variables/{variable}", "variable-secret-value-123")
    with caplog.at_level(logging.DEBUG):
        backend = ours(**kwargs(aws_env))
        assert backend.get_connection(cid) is not None
        assert backend.get_variable(variable) == "variable-secret-value-123"
    assert "GetSecretValue" in caplog.text  # botocore did log the calls
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), "variable-secret-value-123"])
    assert "withheld by kong-secrets-backend" in caplog.text
