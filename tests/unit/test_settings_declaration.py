"""The settings declarations: one per kwarg, the single source of validation, Settings and the docs' reference."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings import OWN_SETTINGS, Settings, parse_backend_kwargs, reference_markdown
from kong_secrets_backend.settings_schema import Setting, reference_table
from kong_secrets_backend.sources.aws_settings import AWS_BACKEND_SETTINGS, AWS_CLIENT_SETTINGS
from kong_secrets_backend.sources.vault_settings import HVAC_CLIENT_SETTINGS, VAULT_SETTINGS

BASE = {"url": "http://127.0.0.1:9", "token": "t0ken-value"}
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_configuration_reference_equals_what_the_declarations_render() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert text == reference_markdown(text), "docs/configuration.md is out of date: run scripts/configuration-reference"
    for setting in (*OWN_SETTINGS, *VAULT_SETTINGS, *HVAC_CLIENT_SETTINGS, *AWS_BACKEND_SETTINGS, *AWS_CLIENT_SETTINGS):
        assert f"| `{setting.name}` |" in text


def test_a_missing_marker_pair_is_an_error() -> None:
    with pytest.raises(ValueError, match="generated:own-kwargs"):
        reference_markdown("no markers here")


def test_settings_has_one_field_per_own_kwarg_and_parses_each_default() -> None:
    names = [s.name for s in OWN_SETTINGS]
    assert len(names) == len(set(names))
    assert {f.name for f in fields(Settings)} == {*names, "vault", "aws", "fingerprint"}
    settings = parse_backend_kwargs(BASE)
    for setting in OWN_SETTINGS:
        assert getattr(settings, setting.name) == setting.default, setting.name


def test_every_declaration_has_one_line_of_doc() -> None:
    for setting in (*OWN_SETTINGS, *VAULT_SETTINGS, *HVAC_CLIENT_SETTINGS, *AWS_BACKEND_SETTINGS, *AWS_CLIENT_SETTINGS):
        assert setting.doc and "\n" not in setting.doc and "|" not in setting.doc, setting.name


@pytest.mark.parametrize("setting", [s for s in OWN_SETTINGS if s.kind == "number"], ids=lambda s: s.name)
def test_declared_bounds_are_enforced_by_name(setting: Setting) -> None:
    assert setting.minimum is not None
    with pytest.raises(ConfigError, match=f"^{setting.name} must be (between|at least)"):
        parse_backend_kwargs({**BASE, setting.name: setting.minimum - 1})
    if setting.maximum is not None:
        with pytest.raises(ConfigError, match=f"^{setting.name} must be between"):
            parse_backend_kwargs({**BASE, setting.name: setting.maximum + 1})
        assert getattr(parse_backend_kwargs({**BASE, setting.name: setting.maximum}), setting.name) == setting.maximum
    with pytest.raises(ConfigError, match=f"^{setting.name} must be a number"):
        parse_backend_kwargs({**BASE, setting.name: True})


@pytest.mark.parametrize("setting", [s for s in OWN_SETTINGS if s.kind == "bool"], ids=lambda s: s.name)
def test_declared_booleans_accept_json_and_strings(setting: Setting) -> None:
    assert getattr(parse_backend_kwargs({**BASE, setting.name: "false"}), setting.name) is False
    assert getattr(parse_backend_kwargs({**BASE, setting.name: True}), setting.name) is True
    with pytest.raises(ConfigError, match=f"^{setting.name} must be true or false"):
        parse_backend_kwargs({**BASE, setting.name: 1})


def test_fast_masking_is_declared_and_parsed() -> None:
    assert parse_backend_kwargs(BASE).fast_masking is True
    assert parse_backend_kwargs({**BASE, "fast_masking": False}).fast_masking is False


def test_reference_table_shows_type_bounds_default_and_requirement() -> None:
    table = reference_table(
        (
            Setting("n", "number", 2.0, "a number", minimum=1, maximum=3),
            Setting("d", "directory", None, "a dir", shown_default="somewhere", requires=("mode", "file")),
        )
    )
    assert "| `n` | number, 1 to 3 | `2` | a number |" in table
    assert '| `d` | absolute path | somewhere | a dir; only with `mode` `"file"` |' in table


def test_vault_declarations_match_the_official_backend() -> None:
    from airflow.providers.hashicorp.secrets.vault import VaultBackend

    official = {
        name: p.default
        for name, p in inspect.signature(VaultBackend.__init__).parameters.items()
        if p.kind is p.POSITIONAL_OR_KEYWORD and name != "self"
    }
    ours = {s.name: s.default for s in VAULT_SETTINGS if s.name != "cert_role"}  # cert_role: ours (auth_type cert)
    assert ours == official


def test_aws_declarations_match_the_official_backend() -> None:
    from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

    official = {
        name: p.default
        for name, p in inspect.signature(SecretsManagerBackend.__init__).parameters.items()
        if p.kind is p.POSITIONAL_OR_KEYWORD and name != "self"
    }
    assert {s.name: s.default for s in AWS_BACKEND_SETTINGS} == official


def test_the_cfg_examples_of_the_reference_parse() -> None:
    import configparser
    import json
    import re

    blocks = re.findall(r"```ini\n(.*?)```", REFERENCE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2
    for block in blocks:
        cfg = configparser.ConfigParser()
        cfg.read_string(block)
        if cfg.has_section("secrets"):
            backend, kwargs = cfg.get("secrets", "backend"), cfg.get("secrets", "backend_kwargs")
        else:
            backend, kwargs = cfg.get("workers", "secrets_backend"), cfg.get("workers", "secrets_backend_kwargs")
        assert backend == "kong_secrets_backend.KongSecretsBackend"
        parse_backend_kwargs(json.loads(kwargs))
