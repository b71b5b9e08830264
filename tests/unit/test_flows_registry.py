"""The flow registry: one table names every flow's module, and nothing else in the package names a flow.

A flow declared here, in this test module, shows what adding a flow takes: a module ending with a FlowKind
and one registry line. Parsing, masking, the source a flow needs and building all follow from the entry.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

from kong_secrets_backend import flows
from kong_secrets_backend.errors import SecretFormatError
from kong_secrets_backend.flows import FlowKind, build_flow, flow_kind, is_static, parse_credential
from kong_secrets_backend.flows.fields import Fields
from kong_secrets_backend.tokens import Token
from tests.backend_settings import NO_SOURCE, SETTINGS, backend_settings

# --- a flow of this test's own: a credential, its parsing, its minting, its FlowKind -----------------------------

NAME = "echo"


@dataclass(frozen=True)
class Echo:
    word: str = field(repr=False)
    header_name: str = "X-Echo"
    version: str | None = None

    flow = NAME
    header_scheme = ""

    def secret_values(self) -> tuple[str, ...]:
        return (self.word,)

    def cache_key(self) -> str:
        return f"echo:{len(self.word)}:{self.version}"


class EchoFlow:
    name = NAME
    static = True

    def __init__(self, credential: Echo) -> None:
        self.credential = credential

    def cache_key(self) -> str:
        return self.credential.cache_key()

    def mint(self, deadline: Any) -> Token:
        now = time.time()
        return Token(value=self.credential.word, issued_at=now, expires_at=now + 60, flow=self.name)


def parse(block: Mapping[str, Any], *, settings: Any, version: str | None) -> Echo:
    return Echo(word=Fields(block, allowed={"word"}, flow=NAME).required_str("word"), version=version)


def build(credential: Echo, *, http: Any, settings: Any, source: Any) -> EchoFlow:
    return EchoFlow(credential)


FLOW = FlowKind(name=NAME, parse=parse, build=build, static=True, secret_fields=("word",), source="aws")


@pytest.fixture
def echo_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "REGISTRY", MappingProxyType({**flows.REGISTRY, NAME: __name__}))


# --- the registry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(flows.REGISTRY))
def test_every_registered_module_holds_the_flow_of_its_name(name: str) -> None:
    module = importlib.import_module(flows.REGISTRY[name])
    kind = flow_kind(name)
    assert kind is module.FLOW and kind.name == name == module.NAME


def test_only_key_auth_is_static_and_only_vault_identity_needs_a_source() -> None:
    static = {name for name in flows.REGISTRY if is_static(name)}
    sources = {name: kind.source for name in flows.REGISTRY if (kind := flow_kind(name)) and kind.source}
    assert (static, sources) == ({"key_auth"}, {"vault_identity": "vault"})
    assert not is_static("saml") and not is_static(None) and flow_kind(["key_auth"]) is None


def test_a_flow_added_by_one_registry_line_is_parsed_masked_and_built(
    echo_registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked: list[str] = []
    monkeypatch.setattr(flows, "mask", lambda *values: masked.extend(values))
    aws = backend_settings(source="aws")
    with pytest.raises(SecretFormatError, match="unknown fields: extra"):
        parse_credential({"flow": NAME, "word": "echo-word-refused-but-masked", "extra": 1}, settings=aws, version=None)
    assert masked == ["echo-word-refused-but-masked"]  # its secret_fields, before the block was refused
    with pytest.raises(SecretFormatError, match="flow 'echo' needs source 'aws' \\(this backend reads from 'vault'\\)"):
        parse_credential({"flow": NAME, "word": "hello-echo"}, settings=SETTINGS, version=None)

    cred = parse_credential({"flow": NAME, "word": "hello-echo"}, settings=aws, version="3")
    flow = build_flow(cred, http=None, settings=aws, source=NO_SOURCE)  # type: ignore[arg-type]
    assert isinstance(flow, EchoFlow) and flow.mint(None).value == "hello-echo"
    assert is_static(NAME)
    with pytest.raises(
        SecretFormatError, match="supported: client_credentials, kong_jwt, key_auth, vault_identity, echo"
    ):
        parse_credential({"flow": "saml"}, settings=aws, version=None)
