"""AWS Secrets Manager throttling or failing (tests/faulty_aws.py in front of moto): bounded retries inside the
deadline, the last-read connection and its still-valid token served through the outage, else one clear ERROR."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.moto import Moto
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from kong_secrets_backend.errors import KongAuthError
from tests.faulty_aws import FaultyAws, faulty_aws
from tests.resilience.gateway import accepted

pytestmark = pytest.mark.usefixtures("fresh_process_state", "aws_env")

DEADLINE = 2.0


@pytest.fixture
def wire(aws_env: Moto) -> Iterator[FaultyAws]:
    with faulty_aws(aws_env.url) as proxy:
        yield proxy


def _kong_connection(stack: Stack, moto: Moto) -> tuple[str, str]:
    """A Kong connection secret at moto: (conn_id, secret name)."""
    host, port = stack.gateway_host_port()
    cid = f"awsout_{uuid.uuid4().hex[:8]}"
    name = f"airflow/connections/{cid}"
    moto.put_secret(
        name, {"conn_type": "http", "host": host, "port": port, "schema": "http", "kong_auth": stack.kong_auth()}
    )
    return cid, name


def _backend(wire: FaultyAws, **extra: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(
        source="aws", region_name="eu-central-1", endpoint_url=wire.url, deadline=DEADLINE, **extra
    )
    set_connection_class(backend, Connection)
    return backend


@pytest.mark.parametrize("fault", ["throttle", "500"])
def test_throttling_and_500s_are_retried_with_backoff_inside_the_deadline(
    stack: Stack, aws_env: Moto, wire: FaultyAws, fault: str
) -> None:
    cid, name = _kong_connection(stack, aws_env)
    wire.fail(fault, times=2)
    started = time.monotonic()
    accepted(stack, _backend(wire).get_connection(cid))
    assert time.monotonic() - started < DEADLINE
    assert [r.answered for r in wire.reads(name)] == [fault, fault, "forwarded"]  # botocore adds no retries


def test_a_still_valid_token_is_served_while_secrets_manager_throttles_fails_or_hangs(
    stack: Stack, aws_env: Moto, wire: FaultyAws, caplog: pytest.LogCaptureFixture
) -> None:
    cid, name = _kong_connection(stack, aws_env)
    backend = _backend(wire, credential_cache_ttl=0.2)
    first = accepted(stack, backend.get_connection(cid))
    for fault in ("throttle", "500", "html500", "hang"):
        wire.fail(fault)
        time.sleep(0.25)  # past the credential TTL: the next resolution must read Secrets Manager
        before = len(wire.reads(name))
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
            assert accepted(stack, backend.get_connection(cid)) == first, fault
        assert time.monotonic() - started < DEADLINE + 0.5, fault
        assert len(wire.reads(name)) - before == 3, fault  # bounded: three attempts, then the last read is served
        wire.heal()
    assert caplog.text.count(f"serving conn_id {cid} from the secret last read") == 4
    assert "unavailable reading" in caplog.text and "unreachable reading" in caplog.text  # 4xx/5xx vs a timeout


@pytest.mark.parametrize("fault", ["throttle", "html500"])
def test_secrets_manager_failing_without_a_token_is_one_clear_error_within_the_deadline(
    stack: Stack, aws_env: Moto, wire: FaultyAws, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    cid, name = _kong_connection(stack, aws_env)
    wire.fail(fault)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"), pytest.raises(KongAuthError) as info:
        _backend(wire).get_connection(cid)
    assert time.monotonic() - started < DEADLINE + 0.5
    assert info.value.reason == "aws_unavailable"
    assert len(wire.reads(name)) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert cid in errors[0] and f"AWS Secrets Manager unavailable reading {name}" in errors[0]
