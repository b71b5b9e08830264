"""flow key_auth: the key itself is the header's value; nothing is minted or cached."""

from __future__ import annotations

from kong_secrets_backend.credentials import parse_credential
from kong_secrets_backend.flows import build_flow
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport

KEY = "kak-unit-test-key-0123456789"


def test_key_auth_is_a_static_flow_whose_token_is_the_key() -> None:
    cred = parse_credential({"flow": "key_auth", "key": KEY}, allow_insecure_http=False)
    flow = build_flow(cred, HttpTransport(), default_ttl=300)
    assert flow.static is True
    token = flow.mint(Deadline(1))
    assert token.value == KEY and token.remaining() > 86400
    assert KEY not in repr(flow) and KEY not in flow.cache_key()
    assert not hasattr(flow, "cache_secret")  # never written to a shared token cache
