"""source "aws" without a server: settings parsing, secret names and the reading of JSON connection secrets,
each compared with SecretsManagerBackend where it has an equivalent. The server side is in
tests/integration/test_sources_aws.py and tests/differential/test_aws.py (moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings import parse_backend_kwargs
from kong_secrets_backend.sources.aws import AwsSource
from kong_secrets_backend.sources.aws_settings import parse_aws_settings


def source(**kwargs: Any) -> AwsSource:
    return AwsSource(parse_aws_settings(kwargs))


def test_defaults_are_secrets_manager_backends() -> None:
    config = parse_backend_kwargs({"source": "aws"})
    official = SecretsManagerBackend()
    assert config.aws is not None and config.vault is None
    aws = config.aws
    assert (aws.connections_prefix, aws.variables_prefix, aws.config_prefix, aws.sep) == (
        official.connections_prefix,
        official.variables_prefix,
        official.config_prefix,
        official.sep,
    )
    assert aws.role_arn is None and aws.region_name is None and aws.endpoint_url is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connections_prefix": "a/b//", "variables_prefix": "", "config_prefix": None},
        {"connections_prefix": "a--", "variables_prefix": "v-", "config_prefix": "c", "sep": "--"},
        {"connections_prefix": "x.", "sep": "."},
    ],
)
def test_prefixes_are_normalised_like_secrets_manager_backend(kwargs: dict[str, Any]) -> None:
    ours, official = parse_aws_settings(kwargs), SecretsManagerBackend(**kwargs)
    assert (ours.connections_prefix, ours.variables_prefix, ours.config_prefix) == (
        official.connections_prefix,
        official.variables_prefix,
        official.config_prefix,
    )


def test_secret_names_follow_prefix_sep_pattern_and_team_rules() -> None:
    s = source(connections_prefix="conns", sep=".", variables_prefix="", connections_lookup_pattern="^kong_")
    assert s._names("connections", "kong_a", None) == ["conns.kong_a"]
    assert s._names("connections", "KONG_a", "t1") == ["conns.t1--KONG_a", "conns.KONG_a"]  # re.IGNORECASE
    assert s._names("connections", "other", None) == []
    assert s._names("variables", "v", "t1") == ["v"]  # no prefix: no team-scoped name either
    assert s._names("config", "c", "t1") == ["airflow/config.c"]  # config is never team scoped
    assert source(config_prefix=None)._names("config", "c", None) == []
    assert source(config_prefix=None).describe("config", "c") == "(no config prefix configured)"
    assert s.describe("connections", "other") == "(connections lookup skipped for this id)"


def test_multi_team_refuses_ids_with_the_team_separator(monkeypatch: pytest.MonkeyPatch) -> None:
    s = source()
    assert s._names("connections", "a--b", None) == ["airflow/connections/a--b"]
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    assert s._names("connections", "a--b", None) == [] == s._names("variables", "a--b", "t")


SECRETS: list[dict[str, Any]] = [
    {"user": "u", "pass": "p", "server": "s", "database": "d", "engine": "postgres", "port": 5432},
    {"login": "l", "user": "u2", "username": "u3", "password": "p", "key": "k", "host": "h", "remote_host": "r"},
    {"conn_id": "as-type", "schema": "sc", "extra": {"a": [1, {"b": None}]}, "unknown": "dropped"},
    {"conn_uri": "http://h"},
    {},
    {"usr": "u", "endpoint": "e", "kind": "http", "secret": "s", "extra": '{"x": 1}'},
]
WORDS = {"user": ["usr"], "host": ["endpoint"], "conn_type": ["kind"], "password": ["secret"]}


@pytest.mark.parametrize("words", [None, WORDS])
@pytest.mark.parametrize("secret", SECRETS)
def test_json_connection_secrets_are_rekeyed_like_secrets_manager_backend(
    secret: dict[str, Any], words: dict[str, list[str]] | None
) -> None:
    official = SecretsManagerBackend(extra_conn_words=words)
    expected = json.dumps(official._standardize_secret_keys(secret))
    record = source(extra_conn_words=words)._connection_record(json.dumps(secret), "name", "v1")
    assert record.plain == expected
    assert record.data == json.loads(expected)
    assert record.version == "v1"


def test_kong_auth_survives_the_rekeying_and_a_uri_is_kept_verbatim() -> None:
    secret = {"engine": "http", "server": "kong", "kong_auth": {"client_id": "c"}}
    record = source()._connection_record(json.dumps(secret), "n", None)
    assert record.data["kong_auth"] == {"client_id": "c"} and record.data["host"] == "kong"
    assert "kong_auth" not in (record.plain or "")
    uri = source()._connection_record("  http://h:1/x ", "n", None)
    assert (uri.plain, uri.data) == ("  http://h:1/x ", {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sep": ""}, "sep must be a non-empty string"),
        ({"connections_prefix": 5}, "connections_prefix must be a string or null"),
        ({"variables_lookup_pattern": "("}, "variables_lookup_pattern is not a valid regular expression"),
        ({"extra_conn_words": {"hostname": ["h"]}}, "unknown connection part 'hostname'"),
        ({"extra_conn_words": {"host": "h"}}, "extra_conn_words.host must be a list of strings"),
        ({"role_arn": "arn:aws:iam::1:role/r", "assume_role_method": "assume_role_with_saml"}, "not supported"),
        ({"aws_access_key_id": "AKIA"}, "must be given together"),
        ({"region_name": 1}, "region_name must be a string"),
        ({"verify": 1}, "verify must be true, false or the path"),
        ({"service_config": {"sts": "x"}}, "service_config.sts must be a JSON object"),
    ],
)
def test_bad_aws_kwargs_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_aws_settings(kwargs)


def test_kwargs_of_the_other_source_are_named() -> None:
    with pytest.raises(ConfigError, match="backend kwargs auth_type, url do not apply to source 'aws'"):
        parse_backend_kwargs({"source": "aws", "url": "http://v", "auth_type": "token"})
    with pytest.raises(ConfigError, match="backend kwargs region_name do not apply to source 'vault'"):
        parse_backend_kwargs({"token": "t0ken-value", "region_name": "eu-west-1"})
    with pytest.raises(ConfigError, match="source 'gcp' is not supported"):
        parse_backend_kwargs({"source": "gcp"})


def test_explicit_aws_keys_are_masked_and_not_in_repr() -> None:
    settings = parse_aws_settings({"aws_access_key_id": "AKIAEXPLICIT", "aws_secret_access_key": "explicit-secret-key"})
    assert settings.secret_values() == ("explicit-secret-key",)
    assert "explicit-secret-key" not in repr(settings) and "explicit-secret-key" not in repr(AwsSource(settings))


def test_a_forked_child_builds_its_own_client_and_lock() -> None:
    s = source(region_name="eu-west-1")
    parent_lock = s._lock
    s._client, s._pid = object(), 1  # as built by the parent
    s.after_fork()
    assert s._client is None and s._lock is not parent_lock
