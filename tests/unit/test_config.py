from __future__ import annotations

import pytest

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings import parse_backend_kwargs


def test_defaults_match_airflow_vault_backend() -> None:
    config = parse_backend_kwargs({"url": "http://127.0.0.1:8200", "token": "root-token-value"})
    vault = config.vault
    assert vault is not None
    assert config.source == "vault"
    assert vault.mount_point == "secret"
    assert vault.kv_engine_version == 2
    assert vault.connections_path == ("connections",)
    assert vault.variables_path == ("variables",)
    assert vault.config_path == ("config",)
    assert vault.auth.type == "token"
    assert config.token_cache == "memory"
    assert config.allow_insecure_http is False
    assert config.deadline == 10.0


def test_paths_accept_lists_strip_slashes_and_none_disables() -> None:
    config = parse_backend_kwargs(
        {"token": "t0ken-value", "connections_path": ["a/", "b"], "variables_path": None, "config_path": "cfg/"}
    )
    assert config.vault is not None
    assert config.vault.connections_path == ("a", "b")
    assert config.vault.variables_path is None
    assert config.vault.config_path == ("cfg",)


def test_repr_never_shows_vault_secrets() -> None:
    config = parse_backend_kwargs({"auth_type": "approle", "role_id": "role-1", "secret_id": "approle-secret-xyz"})
    assert "approle-secret-xyz" not in repr(config)
    assert config.vault is not None
    assert config.vault.auth.secret_values() == ("approle-secret-xyz",)


def test_same_kwargs_give_same_fingerprint_and_different_secrets_do_not() -> None:
    a = parse_backend_kwargs({"token": "t0ken-a"})
    b = parse_backend_kwargs({"token": "t0ken-a"})
    c = parse_backend_kwargs({"token": "t0ken-b"})
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "x", "bogus": 1}, "unknown backend kwargs: bogus"),
        ({"token": "x", "kv_engine_version": 3}, "kv_engine_version must be 1 or 2"),
        ({"auth_type": "approle"}, "requires 'role_id'"),
        ({"auth_type": "nope", "token": "x"}, "auth_type 'nope' is not one of"),
        ({"token": "x", "source": "gcp"}, "source 'gcp' is not supported"),
        ({"token": "x", "token_cache": "memcached"}, "token_cache 'memcached'"),
        ({"token": "x", "deadline": 0}, "deadline must be between"),
        ({"token": "x", "deadline": "10"}, "deadline must be a number"),
        ({"token": "x", "allow_insecure_http": "yes"}, "allow_insecure_http must be true or false"),
        ({"token": "x", "connections_path": 5}, "connections_path must be"),
    ],
)
def test_bad_kwargs_are_refused_by_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_backend_kwargs(kwargs)


def test_token_auth_without_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="requires 'token' or 'token_path'"):
        parse_backend_kwargs({})


def test_token_auth_falls_back_to_vault_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "env-token-value")
    config = parse_backend_kwargs({})
    assert config.vault is not None
    assert config.vault.auth.params["token"] == "env-token-value"
