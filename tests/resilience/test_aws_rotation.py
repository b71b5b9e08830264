"""AWS Secrets Manager mid-rotation, on moto and the stack's IdP: AWSCURRENT is read; when the IdP refuses it and
an AWSPENDING version exists and differs, that version is tried once. Requests are counted on the wire
(tests/faulty_aws.py, forwarding only)."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.idp import IdpClient
from devstack.moto import Moto
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from kong_secrets_backend.errors import KongAuthError
from tests.faulty_aws import FaultyAws, faulty_aws
from tests.leak_scan import LEAKS
from tests.resilience.gateway import accepted

pytestmark = pytest.mark.usefixtures("fresh_process_state", "aws_env")

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


@pytest.fixture
def wire(aws_env: Moto) -> Iterator[FaultyAws]:
    with faulty_aws(aws_env.url) as proxy:
        yield proxy


def _client(label: str) -> IdpClient:
    client = IdpClient(f"aws-rot-{uuid.uuid4().hex[:8]}", f"{label}-secret-{secrets.token_hex(12)}")
    LEAKS.plant(client.client_secret)
    return client


def _with_secret(client: IdpClient, label: str) -> IdpClient:
    other = IdpClient(client.client_id, f"{label}-secret-{secrets.token_hex(12)}")
    LEAKS.plant(other.client_secret)
    return other


def _connection(stack: Stack, client: IdpClient | None = None, **kong_auth: Any) -> dict[str, Any]:
    """A Kong connection in SecretsManagerBackend's JSON-fields form."""
    host, port = stack.gateway_host_port()
    if client is not None:
        kong_auth = {**stack.kong_auth(client_id=client.client_id, client_secret=client.client_secret), **kong_auth}
    return {"conn_type": "http", "host": host, "port": port, "schema": "http", "kong_auth": kong_auth}


def _backend(wire: FaultyAws, **extra: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(source="aws", region_name="eu-central-1", endpoint_url=wire.url, **extra)
    set_connection_class(backend, Connection)
    return backend


def _finish_rotation(moto: Moto, name: str, pending_version: str) -> None:
    """What a rotation's finishSecret step does: AWSCURRENT moves to the pending version."""
    sm = moto.client()
    current = next(
        vid for vid, stages in sm.describe_secret(SecretId=name)["VersionIdsToStages"].items() if CURRENT in stages
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage=CURRENT, MoveToVersionId=pending_version, RemoveFromVersionId=current
    )


@pytest.mark.parametrize("where", ["connection", "credentials_path"])
def test_mid_rotation_the_awspending_version_is_tried_once_when_the_idp_refuses_awscurrent(
    stack: Stack, aws_env: Moto, wire: FaultyAws, where: str
) -> None:
    old = _client("aws-old")
    new = _with_secret(old, "aws-new")
    stack.idp.put_client(new)  # the rotation set the new secret at the IdP; AWSCURRENT still holds the old one
    cid = f"awsrot_{uuid.uuid4().hex[:8]}"
    conn_name = f"airflow/connections/{cid}"
    if where == "connection":
        rotated = conn_name
        aws_env.put_secret(conn_name, _connection(stack, old))
        pending_version = aws_env.put_pending(conn_name, _connection(stack, new))
    else:
        rotated = f"kong/credentials/{cid}"
        block = stack.kong_auth(client_id=old.client_id)
        aws_env.put_secret(rotated, {**block, "client_secret": old.client_secret})
        pending_version = aws_env.put_pending(rotated, {**block, "client_secret": new.client_secret})
        aws_env.put_secret(conn_name, _connection(stack, credentials_path=rotated))
    stack.idp.reset_counts()
    backend = _backend(wire, credential_cache_ttl=0.3)

    first = accepted(stack, backend.get_connection(cid))  # no failure: refused, re-read, then AWSPENDING
    assert wire.stages(rotated) == [CURRENT, CURRENT, PENDING]
    assert stack.idp.token_requests(old.client_id) == 2  # the refused AWSCURRENT secret, then the pending one

    time.sleep(0.4)  # past the credential TTL: AWSCURRENT (still the old secret) is read again
    assert accepted(stack, backend.get_connection(cid)) == first  # the pending version's token, still fresh
    assert PENDING not in wire.stages(rotated)[3:]
    _finish_rotation(aws_env, rotated, pending_version)  # AWSCURRENT moves to the version already in use
    time.sleep(0.4)
    assert accepted(stack, backend.get_connection(cid)) == first
    assert stack.idp.token_requests(old.client_id) == 2  # no mint after the pending one
    assert wire.stages(rotated)[-1] == CURRENT


def test_a_working_awscurrent_credential_never_reads_awspending(stack: Stack, aws_env: Moto, wire: FaultyAws) -> None:
    client = _client("aws-current")
    stack.idp.put_client(client)
    cid = f"awsrot_{uuid.uuid4().hex[:8]}"
    name = f"airflow/connections/{cid}"
    aws_env.put_secret(name, _connection(stack, client))
    aws_env.put_pending(name, _connection(stack, _with_secret(client, "aws-next")))  # a rotation just started
    backend = _backend(wire, credential_cache_ttl=0.2)
    first = accepted(stack, backend.get_connection(cid))
    time.sleep(0.3)
    assert accepted(stack, backend.get_connection(cid)) == first
    assert wire.stages(name) == [CURRENT, CURRENT]


@pytest.mark.parametrize("pending", [None, "{not json"], ids=["no-pending", "broken-pending"])
def test_a_refused_credential_without_a_usable_pending_version_is_one_clear_error(
    stack: Stack, aws_env: Moto, wire: FaultyAws, caplog: pytest.LogCaptureFixture, pending: str | None
) -> None:
    old = _client("aws-revoked")
    stack.idp.put_client(_with_secret(old, "aws-elsewhere"))
    cid = f"awsrot_{uuid.uuid4().hex[:8]}"
    name = f"airflow/connections/{cid}"
    aws_env.put_secret(name, _connection(stack, old))
    if pending is not None:
        aws_env.put_pending(name, pending)
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend"), pytest.raises(KongAuthError):
        _backend(wire).get_connection(cid)
    assert wire.stages(name) == [CURRENT, CURRENT, PENDING]  # re-read, then looked for AWSPENDING once
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and cid in errors[0] and "invalid_client" in errors[0]
