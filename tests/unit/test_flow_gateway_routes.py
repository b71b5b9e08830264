"""The test gateway's Kong jwt and key-auth routes refuse values that would not survive haproxy.cfg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.gateway import KeyAuthRoute, KongJwtCredential, KongJwtRoute, render_config

HS = KongJwtCredential("airflow-key", "airflow", "HS256", secret="0123456789abcdef")


@pytest.mark.parametrize(
    "route",
    [
        KongJwtRoute("/j", ()),
        KongJwtRoute("/j", (HS, HS)),
        KongJwtRoute("/j", (KongJwtCredential("k", "c", "HS256", secret="it's"),)),
        KongJwtRoute("/j", (KongJwtCredential("k k", "c", "HS256", secret="s"),)),
        KongJwtRoute("/j", (KongJwtCredential("k", "c", "RS256"),)),
        KongJwtRoute("/j", (KongJwtCredential("k", "c", "none", secret="s"),)),
        KongJwtRoute("/j", (HS,), key_claim_name="a b"),
        KongJwtRoute("/j", (HS,), claims_to_verify=("exp", "aud")),
        KeyAuthRoute("/k", {}),
        KeyAuthRoute("/k", {"has space": "c"}),
        KeyAuthRoute("/k", {"key": "c"}, key_names=("bad header",)),
    ],
)
def test_unusable_routes_are_refused(route: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_config(1, 2, [route], tmp_path)


def test_key_map_is_private_and_messages_with_quotes_are_double_quoted(tmp_path: Path) -> None:
    cfg = render_config(1, 2, [KeyAuthRoute("/k", {"key-1": "c1"}), KongJwtRoute("/j", (HS,))], tmp_path)
    assert (tmp_path / "r0.map").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "r0.map").read_text() == "key-1 c1\n"
    assert '"{\\"message\\":\\"No mandatory \'iss\' in claims\\"}"' in cfg
