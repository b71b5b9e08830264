"""Sealing tokens for shared caches: only a holder of the credential opens an entry, and only under its own name."""

from __future__ import annotations

import time

from kong_secrets_backend.cache.sealing import entry_name, seal, unseal
from kong_secrets_backend.tokens import Token

SECRET = b"cc:abc\0client-secret-value-123\0"
TOKEN = Token(
    value="eyJ.token-value-xyz.sig",
    issued_at=time.time(),
    expires_at=time.time() + 300,
    flow="client_credentials",
    claims={"sub": "airflow-orders", "scope": "orders:read"},
    kid="k1",
)


def test_a_sealed_token_opens_with_the_same_key_and_secret() -> None:
    opened = unseal(seal(TOKEN, key="cc:abc", secret=SECRET), key="cc:abc", secret=SECRET)
    assert opened == TOKEN


def test_the_blob_holds_neither_the_token_nor_the_secret_in_clear() -> None:
    blob = seal(TOKEN, key="cc:abc", secret=SECRET)
    assert b"token-value-xyz" not in blob and b"client-secret-value" not in blob and b"airflow-orders" not in blob


def test_another_secret_or_another_entry_name_does_not_open_it() -> None:
    blob = seal(TOKEN, key="cc:abc", secret=SECRET)
    assert unseal(blob, key="cc:abc", secret=b"cc:abc\0another-secret\0") is None
    assert unseal(blob, key="cc:other", secret=SECRET) is None  # copied under another credential's name


def test_the_cache_key_digest_alone_is_not_enough() -> None:
    blob = seal(TOKEN, key="cc:abc", secret=SECRET)
    assert unseal(blob, key="cc:abc", secret=b"cc:abc") is None


def test_corrupt_truncated_and_foreign_blobs_are_misses_not_errors() -> None:
    blob = seal(TOKEN, key="cc:abc", secret=SECRET)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    for bad in (b"", b"KSB1", blob[:20], tampered, b"not ours at all" * 10, b"KSB1" + b"\0" * 5000, None):
        assert unseal(bad, key="cc:abc", secret=SECRET) is None


def test_each_seal_uses_a_fresh_nonce() -> None:
    assert seal(TOKEN, key="cc:abc", secret=SECRET) != seal(TOKEN, key="cc:abc", secret=SECRET)


def test_entry_names_are_hex_and_differ_per_key() -> None:
    a, b = entry_name("cc:abc"), entry_name("cc:abd")
    assert a != b and all(c in "0123456789abcdef" for c in a)
