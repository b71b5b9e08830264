from __future__ import annotations

import json

import pytest

from kong_secrets_backend.connection import kong_conn_value, plain_conn_value
from kong_secrets_backend.errors import SecretFormatError

SECRET = {
    "conn_type": "http",
    "host": "kong.example.com",
    "schema": "https",
    "login": "someone",
    "password": "basic-password",
    "extra": {"Accept": "application/json", "authorization": "stale"},
    "kong_auth": {"client_secret": "client-secret-123"},
}


def test_plain_secret_is_returned_as_vault_backend_does() -> None:
    assert plain_conn_value({"conn_uri": "http://h:1/x"}) == "http://h:1/x"
    assert json.loads(plain_conn_value({"conn_type": "http", "host": "h"})) == {"conn_type": "http", "host": "h"}


def test_kong_connection_has_the_header_and_nothing_of_kong_auth() -> None:
    out = json.loads(kong_conn_value(SECRET, header_name="Authorization", header_value="Bearer abc", conn_id="c"))
    assert out == {
        "conn_type": "http",
        "host": "kong.example.com",
        "schema": "https",
        "extra": {"Accept": "application/json", "Authorization": "Bearer abc"},
    }
    assert "client-secret-123" not in json.dumps(out)


def test_extra_as_json_string_is_merged() -> None:
    out = json.loads(kong_conn_value({"extra": '{"a": "b"}'}, header_name="apikey", header_value="k", conn_id="c"))
    # a header other than Authorization also brings allow_redirects: false (tests/attacks/test_redirects.py)
    assert out["extra"] == {"a": "b", "apikey": "k", "allow_redirects": False}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"conn_uri": "http://h", "kong_auth": {}}, "cannot be combined with conn_uri"),
        ({"extra": "not json"}, "extra is a string but not a JSON object"),
        ({"extra": [1]}, "extra must be a JSON object"),
    ],
)
def test_bad_connection_fields_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(SecretFormatError, match=message):
        kong_conn_value(data, header_name="Authorization", header_value="Bearer x", conn_id="c")
