"""token_cache / token_cache_dir / refresh_jitter kwargs: valid forms, and errors that name the kwarg and no secret."""

from __future__ import annotations

import pytest

from kong_secrets_backend.errors import ConfigError
from kong_secrets_backend.settings import parse_backend_kwargs

BASE = {"url": "http://127.0.0.1:9", "token": "t0ken-value"}


@pytest.mark.parametrize(
    "mode", ["memory", "file", "redis://127.0.0.1:6379/0", "rediss://:p4ss@redis.example.com:6380", "redis://h"]
)
def test_supported_token_cache_modes(mode: str) -> None:
    assert parse_backend_kwargs({**BASE, "token_cache": mode}).token_cache == mode


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("disk", "token_cache 'disk' is not supported (use 'memory', 'file' or a redis:// / rediss:// URL)"),
        ("http://:hunter22@h:1", "token_cache URL scheme 'http' is not supported"),
        ("redis://:hunter22@h:notaport", "token_cache Redis URL is malformed"),
        ("redis://:hunter22@:6379", "token_cache Redis URL has no host"),
        ("redis://:hunter22@h:6379/zero", "must be a database number"),
        ("redis:/:hunter22@h", "the value is not shown: it may hold a password"),
        (42, "token_cache must be a string, not int"),
    ],
)
def test_bad_token_cache_values_are_refused_without_quoting_a_password(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_backend_kwargs({**BASE, "token_cache": value})
    assert message in str(info.value) and "hunter22" not in str(info.value)


def test_token_cache_dir_is_absolute_and_only_for_file(tmp_path: object) -> None:
    config = parse_backend_kwargs({**BASE, "token_cache": "file", "token_cache_dir": "~/ksb-cache"})
    assert config.token_cache_dir is not None and config.token_cache_dir.endswith("/ksb-cache")
    assert not config.token_cache_dir.startswith("~")
    with pytest.raises(ConfigError, match="token_cache_dir must be an absolute path"):
        parse_backend_kwargs({**BASE, "token_cache": "file", "token_cache_dir": "cache"})
    with pytest.raises(ConfigError, match="token_cache_dir is only used with token_cache 'file'"):
        parse_backend_kwargs({**BASE, "token_cache_dir": "/tmp/x"})
    with pytest.raises(ConfigError, match="token_cache_dir must be a non-empty string"):
        parse_backend_kwargs({**BASE, "token_cache": "file", "token_cache_dir": 7})


def test_refresh_jitter_is_a_fraction() -> None:
    assert parse_backend_kwargs({**BASE, "refresh_jitter": 0}).refresh_jitter == 0
    with pytest.raises(ConfigError, match="refresh_jitter must be between 0 and 1"):
        parse_backend_kwargs({**BASE, "refresh_jitter": 2})


def test_the_config_repr_shows_no_redis_password() -> None:
    config = parse_backend_kwargs({**BASE, "token_cache": "redis://:hunter22@h:6379/0"})
    assert "hunter22" not in repr(config)
