"""The file token cache on the real filesystem (one process here; many processes in tests/integration)."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from kong_secrets_backend.cache.file import FileTokenCache, default_cache_dir
from kong_secrets_backend.cache.sealing import entry_name
from kong_secrets_backend.tokens import Token

KEY, SECRET = "cc:0123", b"cc:0123\0client-secret-value-42\0"


def token(value: str = "token-value-abc", lifetime: float = 300) -> Token:
    now = time.time()
    return Token(value=value, issued_at=now, expires_at=now + lifetime, flow="client_credentials")


def test_directory_is_created_0700_and_entries_0600(tmp_path: Path) -> None:
    cache = FileTokenCache(tmp_path / "cache")
    with cache.lock(KEY, timeout=1, hold=1):
        cache.put(KEY, SECRET, token())
    assert stat.S_IMODE(os.stat(tmp_path / "cache").st_mode) == 0o700
    modes = {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "cache").iterdir()}
    assert modes == {".tok": 0o600, ".lock": 0o600}
    entries = list((tmp_path / "cache").glob("*.tok"))
    assert b"token-value-abc" not in entries[0].read_bytes() and b"client-secret" not in entries[0].read_bytes()


def test_a_token_put_by_one_instance_is_read_by_another(tmp_path: Path) -> None:
    FileTokenCache(tmp_path).put(KEY, SECRET, token())
    found = FileTokenCache(tmp_path).get(KEY, SECRET)
    assert found is not None and found.value == "token-value-abc"


def test_only_a_holder_of_the_credential_reads_the_entry(tmp_path: Path) -> None:
    cache = FileTokenCache(tmp_path)
    cache.put(KEY, SECRET, token())
    assert cache.get(KEY, b"cc:0123\0another-secret\0") is None


def test_a_corrupt_or_foreign_entry_is_ignored_and_replaced(tmp_path: Path) -> None:
    cache = FileTokenCache(tmp_path)
    path = tmp_path / f"{entry_name(KEY)}.tok"
    path.write_bytes(b"garbage")
    assert cache.get(KEY, SECRET) is None
    cache.put("cc:other", SECRET, token("other-token"))  # a valid entry of another credential, copied over
    os.replace(tmp_path / f"{entry_name('cc:other')}.tok", path)
    assert cache.get(KEY, SECRET) is None
    cache.put(KEY, SECRET, token("new-token"))
    assert cache.get(KEY, SECRET).value == "new-token"  # type: ignore[union-attr]


def test_expired_entries_are_misses(tmp_path: Path) -> None:
    cache = FileTokenCache(tmp_path)
    cache.put(KEY, SECRET, Token(value="old", issued_at=time.time() - 10, expires_at=time.time() + 0.05))
    time.sleep(0.1)
    assert cache.get(KEY, SECRET) is None


def test_a_group_readable_directory_of_ours_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir(mode=0o755)
    os.chmod(tmp_path / "c", 0o755)
    FileTokenCache(tmp_path / "c").put(KEY, SECRET, token())
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700


def test_a_directory_of_another_user_or_a_symlink_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    (tmp_path / "theirs").mkdir(mode=0o700)
    os.chown(tmp_path / "theirs", 12345, 12345)
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real").mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING):
        for name in ("theirs", "link"):
            cache = FileTokenCache(tmp_path / name)
            cache.put(KEY, SECRET, token())
            assert cache.get(KEY, SECRET) is None
            with cache.lock(KEY, timeout=0, hold=1) as acquired:
                assert acquired  # nothing to coordinate with: the caller mints for itself
    assert "belongs to uid 12345" in caplog.text and "symlinks are refused" in caplog.text
    assert len(caplog.records) == 2  # one WARNING per cache, not per call
    assert not list((tmp_path / "theirs").iterdir()) and not list((tmp_path / "real").iterdir())


def test_the_lock_is_exclusive_and_times_out(tmp_path: Path) -> None:
    a, b = FileTokenCache(tmp_path), FileTokenCache(tmp_path)
    with a.lock(KEY, timeout=1, hold=1) as first:
        assert first
        started = time.monotonic()
        with b.lock(KEY, timeout=0.2, hold=1) as second:
            assert not second
        assert time.monotonic() - started >= 0.2
        with b.lock(KEY, timeout=0, hold=1) as third:
            assert not third
    with b.lock(KEY, timeout=0, hold=1) as after:
        assert after


def test_default_directory_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "kong-secrets-backend"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "kong-secrets-backend"
