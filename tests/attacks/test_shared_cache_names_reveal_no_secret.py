"""Attack: whoever can list the cache directory or Redis tries to learn a client secret from the entries' names
(a fast hash over the secret let a weak one be guessed offline). Names must come from non-secret identity only, and
entries of two secrets under one name must never be confused (one's entry does not open for the other: a miss).
Real file cache, real redis-server, real OpenBao and oidc-provider.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.redis import Redis
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.cache import sealing
from kong_secrets_backend.cache.file import FileTokenCache
from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.cache.redis import RedisTokenCache
from kong_secrets_backend.errors import TokenEndpointError
from kong_secrets_backend.resolver import Resolution
from kong_secrets_backend.tokens import Origin, RefreshPolicy
from kong_secrets_backend.tokens.broker import TokenBroker
from kong_secrets_backend.transport.deadline import Deadline
from tests.attacks.answering_idp import AnsweringIdp, client_flow
from tests.leak_scan import LEAKS

pytestmark = pytest.mark.usefixtures("fresh_process_state")

WEAK, OTHER = "password1", "correct-horse-battery-staple"  # a guessable secret, and another one


def flow(idp: AnsweringIdp, secret: str, *, version: str = "7", **block: Any) -> Any:
    return client_flow(idp, secret, version=version, **block)


def secret_digests(secret: str) -> set[str]:
    """What an offline guesser would compare names with: hex digests of the secret, alone or in the material."""
    out = set()
    for algorithm in ("md5", "sha1", "sha256", "sha512", "blake2b"):
        out.add(hashlib.new(algorithm, secret.encode()).hexdigest())
    return out


def file_names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.suffix in (".tok", ".lock")}


@pytest.mark.parametrize(
    "block",
    [
        {},
        {"client_auth_method": "client_secret_post"},
        {"client_auth_method": "client_secret_jwt", "kid": "k1"},
    ],
    ids=["basic", "post", "client_secret_jwt"],
)
def test_file_cache_names_are_the_same_for_two_secrets_of_one_identity_and_version(
    idp: AnsweringIdp, tmp_path: Path, block: dict[str, Any]
) -> None:
    names = []
    for secret in (WEAK, OTHER):
        directory = tmp_path / secret
        broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=FileTokenCache(directory))
        broker.obtain(flow(idp, secret, **block), Deadline(5))
        names.append(file_names(directory))
        for name in names[-1]:
            assert secret not in name and not any(d[:16] in name for d in secret_digests(secret))
    assert names[0] == names[1] and len(names[0]) == 2  # the .tok entry and its .lock
    assert flow(idp, WEAK, **block).cache_key() == flow(idp, OTHER, **block).cache_key()


def test_names_follow_the_identity_and_the_version(idp: AnsweringIdp) -> None:
    base = flow(idp, WEAK).cache_key()
    assert flow(idp, WEAK, version="8").cache_key() != base  # a rotation at the source: a new version
    assert flow(idp, WEAK, scope="orders:write").cache_key() != base
    assert flow(idp, WEAK, audience="https://other").cache_key() != base
    assert flow(idp, WEAK, client_id="another-client").cache_key() != base


def test_an_entry_sealed_for_one_secret_is_a_miss_for_the_other_in_the_file_cache(
    idp: AnsweringIdp, tmp_path: Path
) -> None:
    shared = FileTokenCache(tmp_path / "cache")
    weak, other = flow(idp, WEAK), flow(idp, OTHER)
    broker_a = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    broker_b = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared)
    assert broker_a.obtain(weak, Deadline(5)).origin is Origin.MINTED
    (entry,) = (tmp_path / "cache").glob("*.tok")
    blob = entry.read_bytes()
    assert sealing.unseal(blob, key=weak.cache_key(), secret=weak.cache_secret()) is not None
    assert sealing.unseal(blob, key=other.cache_key(), secret=other.cache_secret()) is None
    assert shared.get(other.cache_key(), other.cache_secret()) is None  # a miss, not the other secret's token
    assert broker_b.obtain(other, Deadline(5)).origin is Origin.MINTED  # so the holder of OTHER mints its own
    assert idp.count("ok") == 2
    # and the entry, now sealed for OTHER, is a miss for WEAK's next process (it mints too)
    assert TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=shared).obtain(weak, Deadline(5)).origin is (
        Origin.MINTED
    )


def test_redis_keys_are_the_same_for_two_secrets_and_entries_are_not_confused(
    idp: AnsweringIdp, redis_server: Redis
) -> None:
    weak, other = flow(idp, WEAK), flow(idp, OTHER)
    broker_a = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=RedisTokenCache(redis_server.url))
    broker_a.obtain(weak, Deadline(5))
    keys_a = set(redis_server.keys())
    redis_server.flush()
    broker_b = TokenBroker(MemoryTokenCache(), RefreshPolicy(), shared=RedisTokenCache(redis_server.url))
    broker_b.obtain(other, Deadline(5))
    assert set(redis_server.keys()) - keys_a == set()  # the same names (the lock may be gone)
    (token_key,) = [k for k in keys_a if b":token:" in k]
    assert token_key.decode() == "kong-secrets-backend:token:" + sealing.entry_name(weak.cache_key())
    for secret in (WEAK, OTHER):
        assert not any(d[:16].encode() in token_key for d in secret_digests(secret))
    assert RedisTokenCache(redis_server.url).get(weak.cache_key(), weak.cache_secret()) is None  # OTHER's entry
    assert RedisTokenCache(redis_server.url).get(other.cache_key(), other.cache_secret()) is not None


@pytest.mark.parametrize("token_cache", ["memory", "file"])
def test_a_connection_with_a_wrong_secret_is_never_served_the_right_ones_token(
    stack: Stack, tmp_path: Path, token_cache: str
) -> None:
    """Two Vault paths, one client, both at version 1; the second holds a wrong secret. Same shared name, same
    process: the second must be refused by the IdP, not handed the first one's token from memory or the cache."""
    right = f"names_{uuid.uuid4().hex[:8]}"
    wrong = f"names_{uuid.uuid4().hex[:8]}"
    wrong_secret = "not-the-client-secret-5150"
    LEAKS.plant(wrong_secret)
    assert stack.put(f"connections/{right}", stack.kong_connection()) == 1
    assert stack.put(f"connections/{wrong}", stack.kong_connection(client_secret=wrong_secret)) == 1
    extra = {"token_cache_dir": str(tmp_path / "cache")} if token_cache == "file" else {}
    backend = KongSecretsBackend(**stack.backend_kwargs(token_cache=token_cache, **extra))
    found = backend.resolve(right)
    assert isinstance(found, Resolution)
    with pytest.raises(TokenEndpointError) as refused:
        backend.resolve(wrong)
    assert refused.value.oauth_error == "invalid_client" or refused.value.status == 401
    again = backend.resolve(right)
    assert isinstance(again, Resolution) and again.token.value == found.token.value
    if token_cache == "file":
        assert len(list((tmp_path / "cache").glob("*.tok"))) == 1  # one name for both: the identity
