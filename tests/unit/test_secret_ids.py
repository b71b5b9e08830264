from __future__ import annotations

import pytest

from kong_secrets_backend.errors import SecretIdError
from kong_secrets_backend.sources.paths import validate_secret_id


@pytest.mark.parametrize("conn_id", ["kong_orders", "team-a.orders", "mount/kong_orders", "a..b", "UPPER_1"])
def test_ordinary_ids_pass(conn_id: str) -> None:
    assert validate_secret_id(conn_id) == conn_id


@pytest.mark.parametrize(
    "conn_id",
    [
        "",
        "/etc/passwd",
        "../other",
        "a/../../b",
        "..",
        "%2e%2e/x",
        "%252e%252e/x",
        "a\\b",
        "a\nb",
        "a\x00b",
        "%2Fabs",
        "x/%0a",
    ],
)
def test_ids_leaving_the_path_are_refused(conn_id: str) -> None:
    with pytest.raises(SecretIdError):
        validate_secret_id(conn_id)
