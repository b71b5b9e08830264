"""Plain secrets (no kong_auth) that KongSecretsBackend must return exactly as Airflow's own backends do.

Vault secrets are KV objects (VaultBackend reads ``conn_uri`` or the JSON fields, and ``value`` for variables
and config); AWS secrets are SecretStrings (SecretsManagerBackend reads a URI verbatim or re-keys a JSON
object by its connection words, and returns variables and config verbatim). The entries cover URIs with
percent-encoded and non-ASCII parts, JSON fields with nested extras, extras as strings, ports as strings,
empty and null fields, a field Connection does not know, and values a Connection cannot be built from
(both backends must then fail the same way).
"""

from __future__ import annotations

import json
from typing import Any

# -- Vault (KV objects) ------------------------------------------------------------------------------------

VAULT_CONNECTIONS: dict[str, dict[str, Any]] = {
    "uri_encoded_parts": {
        "conn_uri": "postgresql://us%40er:p%40ss%2Fw%3Ard@db.example.com:5432/my%2Fdb?sslmode=require&application_name=air%20flow"
    },
    "uri_extra_in_query": {
        "conn_uri": "http://api.example.com/?__extra__=%7B%22headers%22%3A%7B%22X-A%22%3A%221%22%7D%7D"
    },
    "uri_ipv6_host": {"conn_uri": "mysql://user:pw@[::1]:3306/db"},
    "uri_key_with_plus_and_slash": {"conn_uri": "aws://AKIAEXAMPLE:se%2Bcr%2Fet%3D@/?region_name=eu-west-1"},
    "uri_no_host_query_only": {"conn_uri": "google-cloud-platform://?key_path=%2Fkeys%2Fsa.json&scope=a%2Cb"},
    "uri_non_ascii": {"conn_uri": "http://n%C3%BCtzer:p%C3%A4ss@example.com:8080/sch%C3%A9ma"},
    "uri_with_protocol_host": {"conn_uri": "http://https%3A%2F%2Fhost.example.com%2Fbase:443"},
    "uri_wins_over_fields": {"conn_uri": "ftp://u:p@ftp.example.com:21", "host": "ignored", "login": "ignored"},
    "json_nested_extra": {
        "conn_type": "http",
        "host": "kong.example.com",
        "schema": "https",
        "port": 8443,
        "extra": {"headers": {"Accept": "application/json"}, "timeout": 30, "verify": True, "tags": ["a", None]},
    },
    "json_extra_as_string": {"conn_type": "http", "host": "h.example.com", "extra": json.dumps({"a": {"b": [1, 2]}})},
    "json_port_as_string": {"conn_type": "postgres", "host": "db", "port": "5432", "login": "u", "password": "p"},
    "json_empty_strings": {"conn_type": "http", "host": "", "login": "", "password": "", "schema": "", "extra": ""},
    "json_nulls": {"conn_type": "http", "host": None, "port": None, "extra": None},
    "json_description_and_unicode": {
        "conn_type": "http",
        "host": "例え.jp",
        "login": "ユーザー",
        "password": "пароль/:@?",
        "description": "non-ASCII: ✓",
    },
    "json_conn_type_with_underscore": {"conn_type": "google_cloud_platform", "extra": {"project": "p-1"}},
    "json_schema_with_slashes": {"conn_type": "wasb", "host": "acct", "schema": "container/dir/sub"},
    "json_extra_header_names": {"conn_type": "http", "host": "h", "extra": {"X-Api.Key": "v", "Content-Type": "a/b"}},
    "json_empty_conn_uri_kept": {"conn_uri": "", "conn_type": "http", "host": "h"},
    "json_unknown_field": {"conn_type": "http", "host": "h", "unexpected": "field"},
    "json_bad_port": {"conn_type": "http", "host": "h", "port": "not-a-port"},
}

VAULT_VARIABLES: dict[str, dict[str, Any]] = {
    "plain": {"value": "hello world"},
    "json_text": {"value": json.dumps({"a": [1, 2, {"b": None}]})},
    "multiline_unicode": {"value": "line 1\nlíne 2 ✓\n"},
    "empty": {"value": ""},
    "no_value_key": {"other": "field"},
    "number": {"value": 42},
}

VAULT_CONFIG: dict[str, dict[str, Any]] = {
    "sql_alchemy_conn": {"value": "postgresql://airflow:p%40ss@db/airflow"},
    "no_value_key": {"values": "typo"},
}

# -- AWS Secrets Manager (SecretStrings) -------------------------------------------------------------------

AWS_CONNECTIONS: dict[str, str] = {
    "uri_encoded_parts": "postgresql://us%40er:p%40ss%2Fw%3Ard@db.example.com:5432/my%2Fdb?sslmode=require",
    "uri_extra_in_query": "http://api.example.com/?__extra__=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D",
    "uri_non_ascii": "http://n%C3%BCtzer:p%C3%A4ss@example.com:8080/sch%C3%A9ma",
    "uri_with_leading_space": "  mysql://user:pw@db:3306/x",
    "json_canonical_names": json.dumps(
        {"conn_type": "http", "login": "u", "password": "p", "host": "h", "port": 80, "schema": "s", "extra": {"a": 1}}
    ),
    "json_aliases": json.dumps(
        {"user": "u", "pass": "p", "server": "srv", "database": "db", "engine": "postgres", "port": "5432"}
    ),
    "json_more_aliases": json.dumps({"username": "u", "key": "k", "remote_host": "rh", "connection_type": "ssh"}),
    "json_extra_as_string": json.dumps({"conn_type": "http", "host": "h", "extra": json.dumps({"n": {"m": [1]}})}),
    "json_leading_whitespace": "\n  " + json.dumps({"conn_type": "http", "host": "ws"}),
    "json_conn_uri_inside": json.dumps({"conn_uri": "http://ignored.example.com"}),
    "json_unknown_fields_dropped": json.dumps({"conn_type": "http", "host": "h", "region": "x", "account": "acct"}),
    "json_extra_conn_words": json.dumps({"usr": "u", "endpoint": "e.example.com", "kind": "http", "secret": "s"}),
    "json_nested_extra_unicode": json.dumps(
        {"conn_type": "http", "host": "例え.jp", "login": "ユーザー", "extra": {"h": {"✓": [True, None, 1.5]}}}
    ),
    "json_bad_port": json.dumps({"conn_type": "http", "host": "h", "port": "x"}),
}

AWS_VARIABLES: dict[str, str] = {
    "plain": "hello world",
    "json_text": json.dumps({"value": "not unwrapped"}),
    "multiline_unicode": "line 1\nlíne 2 ✓\n",
    "with_team_sep": "a value",
}

AWS_CONFIG: dict[str, str] = {"sql_alchemy_conn": "postgresql://airflow:p%40ss@db/airflow"}

EXTRA_CONN_WORDS = {"user": ["usr"], "host": ["endpoint"], "conn_type": ["kind"], "password": ["secret"]}


def corpus_size() -> int:
    return sum(map(len, (VAULT_CONNECTIONS, VAULT_VARIABLES, VAULT_CONFIG, AWS_CONNECTIONS, AWS_VARIABLES, AWS_CONFIG)))
