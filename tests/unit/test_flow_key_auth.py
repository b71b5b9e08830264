"""flow key_auth: the key itself is the header's value; nothing is minted or cached."""

from __future__ import annotations

from kong_secrets_backend.flows import build_flow, parse_credential
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS

KEY = "kak-unit-test-key-0123456789"


def test_key_auth_is_a_static_flow_whose_token_is_the_key() -> None:
    cred = parse_credential({"flow": "key_auth", "key": KEY}, settings=SETTINGS, version=None)
    flow = build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)
    assert flow.static is True
    token = flow.mint(Deadline(1))
    assert token.value == KEY and token.remaining() > 86400
    assert KEY not in repr(flow) and KEY not in flow.cache_key()
    assert not hasattr(flow, "cache_secret")  # never written to a shared token cache


def test_check_reports_a_key_auth_token_as_static() -> None:
    from kong_secrets_backend.cli.check import _token_info
    from kong_secrets_backend.resolver import Resolution
    from kong_secrets_backend.tokens import Origin

    cred = parse_credential({"flow": "key_auth", "key": KEY}, settings=SETTINGS, version=None)
    flow = build_flow(cred, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)
    token = flow.mint(Deadline(1))
    found = Resolution("c", "p", None, flow.name, "apikey", token, Origin.STATIC, None, conn_value="{}")
    assert _token_info(found, runtime=None).obtained == "static"
