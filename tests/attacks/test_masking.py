"""Masking on the real stack: every secret in every form Airflow may print it; public fields stay readable."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.stack import ORDERS_AUDIENCE, ORDERS_SCOPE, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge import masking

pytestmark = pytest.mark.usefixtures("fresh_process_state")


def masker() -> Any:
    found = masking._airflow_masker(masking._masker())
    assert found is not None
    return found


def visible(value: str, text: str) -> bool:
    return value in masker().redact(text)


def test_secrets_are_masked_raw_and_url_encoded_and_public_fields_stay_readable(stack: Stack) -> None:
    cid, path = f"masked_{uuid.uuid4().hex[:10]}", f"kong-credentials/{uuid.uuid4().hex[:10]}"
    stack.put(path, stack.kong_auth("airflow-orders"))
    stack.put(f"connections/{cid}", stack.connection({"credentials_path": path}))
    backend = KongSecretsBackend(**stack.backend_kwargs())
    backend._set_connection_class(Connection)
    conn = backend.get_connection(cid)
    assert conn is not None
    token = conn.extra_dejson["Authorization"].removeprefix("Bearer ")
    secret = stack.clients["airflow-orders"].client_secret
    for value in (token, secret, stack.secret_id):
        for form in (value, quote(value, safe=""), quote_plus(value)):
            assert not visible(form, f"log line with {form} inside"), "a secret is visible in one of its forms"
    assert not visible(token, conn.get_uri())  # the URI form Airflow prints for a connection
    for public in ("airflow-orders", stack.idp.token_url, ORDERS_SCOPE, ORDERS_AUDIENCE):
        assert visible(public, f"requesting {public} for the task"), f"{public} is masked: task logs lose it"
