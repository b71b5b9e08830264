"""64 threads x 1,000 resolutions with two credential rotations in the middle: 0 failures, 0 leaks."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from tests.conftest import assert_no_secrets
from tests.resilience.test_rotation import _client, _rotate, _secret

pytestmark = pytest.mark.usefixtures("fresh_process_state")

THREADS, RESOLUTIONS = 64, 1000


def test_64_threads_resolve_1000_times_through_two_rotations_without_a_failure(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(ttl=6)
    stack.idp.put_client(client)
    cid = f"stress_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", _secret(stack, client))
    backend = KongSecretsBackend(**stack.backend_kwargs(credential_cache_ttl=0.2))
    backend._set_connection_class(Connection)

    failures: list[str] = []
    tokens: set[str] = set()
    done = [0]
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def worker() -> None:
        start.wait()
        for _ in range(RESOLUTIONS):
            try:
                conn = backend.get_connection(cid)
                token = conn.extra_dejson["Authorization"] if conn else ""
                if not token.startswith("Bearer ey"):
                    raise AssertionError("no bearer token")
                with lock:
                    tokens.add(token)
                    done[0] += 1
            except Exception as exc:  # counted, not raised: the assertion below reports them
                with lock:
                    failures.append(type(exc).__name__)
            time.sleep(0.0005)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    secrets_seen = [client.client_secret]
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="kong_secrets_backend"):
        start.wait()
        for fraction in (1 / 3, 2 / 3):  # rotate the secret at the IdP and in Vault, mid-run
            while done[0] < THREADS * RESOLUTIONS * fraction and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            client = _rotate(client)
            secrets_seen.append(client.client_secret)
            stack.idp.put_client(client)
            stack.put(f"connections/{cid}", _secret(stack, client))
        for t in threads:
            t.join()
    elapsed = time.monotonic() - started
    print(f"\n{THREADS * RESOLUTIONS} resolutions in {elapsed:.1f}s, {len(tokens)} distinct tokens")
    assert failures == []
    assert done[0] == THREADS * RESOLUTIONS
    assert_no_secrets(caplog.text, [*stack.planted_secrets(), *secrets_seen, *(t[7:] for t in tokens)])
