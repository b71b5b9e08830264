"""Masking in a long-lived process: every token and credential stays masked, and the masker stops growing.

These tests use Airflow's real secrets masker (on Airflow 3.0 and on 3.3: scripts/test-oldest-airflow runs
tests/unit) and the real kong_jwt flow, which mints locally. No timing is asserted: that the regex Airflow
recompiles on each new secret stays small is what keeps a resolution's cost flat (benchmarks/process_age.py
measures it).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge import masking, masking_index
from kong_secrets_backend.cache.bounded import BoundedMap
from kong_secrets_backend.flows import build_flow, parse_credential
from kong_secrets_backend.settings import parse_backend_kwargs
from kong_secrets_backend.transport.deadline import Deadline
from kong_secrets_backend.transport.http import HttpTransport
from tests.backend_settings import NO_SOURCE, SETTINGS

VAULT = {"url": "http://127.0.0.1:9", "token": "vault-t0ken-for-tests"}


def airflow_masker() -> Any:
    masker = masking._airflow_masker(masking._masker())
    assert masker is not None, "this Airflow's mask_secret no longer calls a module-level _secrets_masker()"
    return masker


def regex_alternatives(masker: Any) -> int:
    """How many secrets the regex that Airflow recompiles on each new secret is joined from."""
    return len(set(masker.patterns))


@pytest.fixture
def fresh_masking(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An empty Airflow masker and a process that has not decided about fast masking yet."""
    masker = airflow_masker()
    masking_index.uninstall(masker)
    masker.reset_masker()
    monkeypatch.setattr(masking, "_fast", masking._FastMasking())
    monkeypatch.setattr(masking, "_registered", BoundedMap(65_536))
    yield masker
    masker.reset_masker()
    masking_index.uninstall(masker)


def connection_json(token: str, conn_id: str, n: int) -> str:
    """What the backend returns for a Kong connection (contract section 3): the header, and the correlation
    headers whose values change on every resolution, in the extras."""
    extra = {
        "Authorization": f"Bearer {token}",
        "X-Airflow-Dag-Id": "orders",
        "traceparent": f"00-{n:032x}-{n:016x}-01",
    }
    return json.dumps({"conn_type": "http", "host": "gateway.example.com", "extra": json.dumps(extra)})


def resolve_like_a_task(conn_json: str, conn_id: str) -> Any:
    """What Airflow does with a connection the backend returned: the task SDK masks ``conn.extra`` whole
    (``_mask_connection_secrets``), and HttpHook reads ``extra_dejson`` (which masks sensitive keys)."""
    from airflow.sdk.definitions.connection import Connection

    data = json.loads(conn_json)
    conn = Connection(conn_id=conn_id, conn_type=data["conn_type"], host=data["host"], extra=data["extra"])
    masking._masker()(conn.extra)  # type: ignore[misc]
    assert conn.extra_dejson["Authorization"].startswith("Bearer ")
    return conn


def kong_jwt_secret(i: int) -> str:
    return f"kong+jwt/secret={i:04d}&with~odd chars!"  # a space and '&' (URL-encoding differs)


def assert_hidden(masker: Any, value: str, where: str) -> None:
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    for form in forms:
        for text in (form, f"x {form} y", f"Authorization=Bearer+{form}&z", f'{{"v": "{form}"}}'):
            visible = form in masker.redact(text)  # (a bare assert would print the value on failure)
            assert not visible, f"{where}: a {len(value)}-character value is visible"


def test_every_live_token_and_credential_stays_masked_raw_and_url_encoded_after_1000_mints(
    fresh_masking: Any,
) -> None:
    masker = fresh_masking
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    # 400 mints refreshing one connection (short-lived tokens), and 600 distinct Kong connections, each with
    # its own credential; all in this one process, as in a triggerer or a long `dags test` session.
    refreshing = [("refreshing", {"flow": "kong_jwt", "key": "refreshing", "private_key": pem})] * 400
    distinct = [
        (f"kong_{i}", {"flow": "kong_jwt", "key": f"key-{i}", "secret": kong_jwt_secret(i)}) for i in range(600)
    ]
    seen: list[tuple[str, str, Any]] = []
    for n, (conn_id, block) in enumerate(refreshing + distinct):
        credential = parse_credential(block, settings=SETTINGS, version=None)
        flow = build_flow(credential, http=HttpTransport(), settings=SETTINGS, source=NO_SOURCE)
        token = flow.mint(Deadline(5))
        masking.mask(token.value)  # as the resolver does before it returns the connection
        conn = resolve_like_a_task(connection_json(token.value, conn_id, n), conn_id)
        seen.append((conn_id, token.value, conn))

    assert masking.fast_masking_active()
    assert len({token for _, token, _ in seen}) == 1000
    # The regex Airflow recompiles on each new secret did not grow: tokens, extras, "Bearer <token>", the
    # kong_jwt secrets (with a space and '&') and the private key were all indexed.
    assert regex_alternatives(masker) == 0
    in_regex = any(token in pattern for _, token, _ in seen for pattern in masker.patterns)
    assert not in_regex, "a token became a regex alternative"

    for conn_id, token, conn in seen:
        assert_hidden(masker, token, f"token of {conn_id}")
        whole = masker.redact(conn.extra) == "***"  # the whole extras, as Airflow masks them today
        assert whole, f"the extras of {conn_id} are not masked whole"
        uri = masker.redact(conn.get_uri())
        visible = token in uri or quote_plus(token) in uri
        assert not visible, f"the token of {conn_id} is visible in its URI"
    for i in range(600):
        assert_hidden(masker, kong_jwt_secret(i), f"kong_jwt secret {i}")
    assert_hidden(masker, pem.strip(), "the private key")
    assert_hidden(masker, pem.strip().replace("\n", "\\n"), "the private key, newlines escaped")
    assert masker.redact("gateway.example.com and orders stay readable") == (
        "gateway.example.com and orders stay readable"
    )


def test_building_the_backend_gives_its_processs_masker_the_index_before_it_registers_anything(
    fresh_masking: Any,
) -> None:
    """A supervisor (the triggerer's main process) builds the backend but never resolves: it only registers what
    its children mask, so the index must be in place as soon as the backend exists."""
    assert not masking_index.is_installed(fresh_masking)
    KongSecretsBackend(**VAULT)
    assert masking.fast_masking_active()
    for n in range(200):  # values a child sends to its supervisor: not one regex alternative each
        masking._masker()(f"conn-extra-{n:04d}-" + "x" * 40)  # type: ignore[misc]
    assert regex_alternatives(fresh_masking) == 0


def test_fast_masking_false_leaves_airflows_masker_as_it_is(fresh_masking: Any) -> None:
    masker = fresh_masking
    masker_class = type(masker)
    KongSecretsBackend(**VAULT, fast_masking=False)  # the kwarg, as Airflow passes it
    tokens = [f"eyJhbGciOiJIUzI1NiJ9.{i:040d}.c2lnbmF0dXJl" for i in range(20)]
    for n, token in enumerate(tokens):
        masking.mask(token)
        resolve_like_a_task(connection_json(token, "plain", n), "plain")
    assert type(masker) is masker_class and not masking.fast_masking_active()
    assert {re.escape(token) for token in tokens} <= set(masker.patterns)  # one regex alternative each, as today
    for token in tokens:
        assert_hidden(masker, token, "token")
    masking.configure(fast_masking=True)  # off wins for the rest of the process
    masking.mask("eyJhbGciOiJIUzI1NiJ9.another-token-value")
    assert not masking.fast_masking_active()


def test_turning_fast_masking_off_after_it_was_installed_keeps_every_value_masked(fresh_masking: Any) -> None:
    masker = fresh_masking
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXZhbHVl"
    masking.mask(token)
    assert masking.fast_masking_active() and regex_alternatives(masker) == 0
    masking.configure(fast_masking=False)
    assert not masking.fast_masking_active() and re.escape(token) in masker.patterns
    assert_hidden(masker, token, "token")


def test_the_fast_masking_kwarg_is_a_bool_defaulting_to_true() -> None:
    assert parse_backend_kwargs(VAULT).fast_masking is True
    assert parse_backend_kwargs({**VAULT, "fast_masking": "false"}).fast_masking is False


class _ListPatternsMasker:
    """A masker of another shape: secrets in a list, matched with str.replace."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def add_mask(self, secret: str, name: str | None = None) -> None:
        self.secrets.append(secret)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def reset_masker(self) -> None:
        self.secrets = []


def _masker_not_redacting_through_replacer() -> Any:
    """Airflow's own class, changed so that redact no longer goes through ``replacer.sub``."""
    base = type(airflow_masker())

    class Changed(base):  # type: ignore[misc, valid-type]
        def redact(self, item: Any, name: Any = None, max_depth: Any = None, **kwargs: Any) -> Any:
            pattern = "|".join(set(self.patterns))
            return re.sub(pattern, "***", item) if pattern else item

    return Changed()


@pytest.mark.parametrize(
    "make_masker", [_ListPatternsMasker, _masker_not_redacting_through_replacer], ids=["no-patterns-set", "no-replacer"]
)
def test_an_unexpected_masker_shape_falls_back_to_airflows_masker_with_one_warning(
    make_masker: Any, fresh_masking: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_masker()
    other_class = type(other)
    monkeypatch.setattr(masking, "_airflow_masker", lambda mask_secret: other)
    monkeypatch.setattr(masking, "_masker", lambda: other.add_mask)
    tokens = [f"eyJhbGciOiJIUzI1NiJ9.{i:040d}.c2lnbmF0dXJl" for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend.airflow_bridge.masking"):
        for token in tokens:
            masking.mask(token)
    warnings = [r for r in caplog.records if r.name == "kong_secrets_backend.airflow_bridge.masking"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "fast_masking is off for this process" in warnings[0].getMessage()
    assert type(other) is other_class  # untouched
    for token in tokens:
        assert token not in other.redact(f"x {token} y")  # still masked, by the masker as it is


def test_a_masker_reset_forgets_indexed_values_like_airflows_own_reset(fresh_masking: Any) -> None:
    masker = fresh_masking
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZXNldCJ9.c2lnbmF0dXJl"
    masking.mask(token)
    assert masker.redact(token) == "***"
    masker.reset_masker()
    assert masker.redact(token) == token and masking.fast_masking_active()
    masker.add_mask(token)
    assert masker.redact(token) == "***"


def test_the_index_masks_a_secret_wherever_it_is_glued_and_overlaps_merge() -> None:
    index = masking_index.SecretIndex(small=0)  # the scan a process uses once it holds many secrets
    token = "tok-ABCDEFGHIJKLMNOP.qrstuv_0123"
    other = "ABCDEFGHIJKLMNOP.qrstuv_0123-zz9"  # overlaps the end of the first one
    assert index.offer(token) and index.offer(other)
    assert index.offer(f"Bearer {token}")  # contains a token: filed under it
    pem = "-----BEGIN KEY-----\nMIIconstantHeaderLine0123456789\nrandomBodyLineRandomBodyLine99\n-----END KEY-----"
    assert index.offer(pem)
    assert not index.offer("short one, (and) odd")  # no run of 16 token characters: a regex alternative
    replacer = masking_index.Replacer(None, index)
    assert replacer.sub("***", f"a={token}-zz9&b") == "a=***&b"
    assert replacer.sub("***", f"%22{token}%22") == "%22***%22"
    assert replacer.sub("***", f"Authorization: Bearer {token}.") == "Authorization: ***."
    assert replacer.sub("***", f"key: {pem}!") == "key: ***!"
    assert replacer.sub("***", "MIIconstantHeaderLine0123456789 alone") == "MIIconstantHeaderLine0123456789 alone"
    assert replacer.sub("***", "nothing here at all, not even /a/long/path/with_token_chars") == (
        "nothing here at all, not even /a/long/path/with_token_chars"
    )
    regex = re.compile(re.escape("s3cret word"))
    both = masking_index.Replacer(regex, index)
    assert both.sub("***", f"s3cret word {token} s3cret word") == "*** *** ***"
