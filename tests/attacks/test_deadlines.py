"""No resolution outlasts its deadline + 1 s, whatever a peer does (contract section 4).

A fault server on 127.0.0.1 (tests/attacks/fault_server.py) stands in front of each peer a resolution waits
for: the identity provider's token endpoint, its OpenID discovery, Vault's identity JWKS, the Vault API (as the
backend's ``url``) and AWS Secrets Manager (as ``endpoint_url``). It accepts and never answers, drips the
status line, the headers or the body a byte a second, or stalls the TLS handshake. Each resolution has
``deadline: 2`` and must return within 3 s: with no token held, as one clear ERROR (never an internal error);
with a still-valid token held, with that token. Only that bound is measured.

The faults of one peer run concurrently (each against its own fault server and conn_id, each timed on its
own), so that the whole matrix costs a few deadlines.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from devstack.moto import Moto
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import ErrorCategory, KongAuthError
from kong_secrets_backend.state import PROCESS, reset_runtimes
from tests.attacks.fault_server import FAULTS, FaultServer, fault_server
from tests.faulty_idp import _Handler, faulty_idp

pytestmark = pytest.mark.usefixtures("fresh_process_state")

DEADLINE = 2.0
BOUND = DEADLINE + 1.0
JWKS_PATH = "/v1/identity/oidc/.well-known/keys"
# A fault that only a connection's first bytes can show: a peer that stalls its TLS handshake is attacked on a
# fresh https:// connection; a peer reached through it once (a warm token) cannot be switched to it.
WARM_FAULTS = tuple(f for f in FAULTS if f != "tls_stall")


@dataclass
class Outcome:
    fault: str
    conn_id: str
    seconds: float
    value: Any  # the connection, or the KongAuthError raised


def _backend(**kwargs: Any) -> KongSecretsBackend:
    backend = KongSecretsBackend(deadline=DEADLINE, **kwargs)
    backend._set_connection_class(Connection)
    return backend


def _timed(fault: str, conn_id: str, resolve: Callable[[], Any]) -> Outcome:
    started = time.monotonic()
    try:
        value = resolve()
    except KongAuthError as exc:
        value = exc
    return Outcome(fault, conn_id, time.monotonic() - started, value)


def _concurrently(calls: list[tuple[str, str, Callable[[], Any]]]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda c: _timed(*c), calls))


def _report(peer: str, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        kind = type(o.value).__name__ if isinstance(o.value, KongAuthError) else "token"
        print(f"deadline-matrix {peer} {o.fault} {o.seconds:.2f}s {kind}")


def _token(conn: Any) -> str:
    assert isinstance(conn, Connection), conn
    return str(conn.extra_dejson["Authorization"])


def _warm(backend: KongSecretsBackend, conn_id: str) -> str:
    """The token a first resolution gets through a fault server that forwards (a busy machine may need another try:
    with ``deadline: 2``, each AWS attempt may take half a second)."""
    for attempt in range(3):
        try:
            return _token(backend.get_connection(conn_id))
        except KongAuthError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _assert_one_clear_error(outcomes: list[Outcome], caplog: pytest.LogCaptureFixture) -> None:
    for o in outcomes:
        assert o.seconds <= BOUND, (o.fault, o.seconds)
        assert isinstance(o.value, KongAuthError), (o.fault, o.value)
        assert o.value.category is not ErrorCategory.INTERNAL, (o.fault, o.value.reason)
        errors = [
            r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and f"'{o.conn_id}'" in r.getMessage()
        ]
        assert len(errors) == 1, (o.fault, errors)
        assert f"[{o.value.reason}]" in errors[0], (o.fault, errors[0])
        # the deadline, or a per-attempt timeout that came first (botocore's, at a quarter of the deadline)
        assert o.value.category in (ErrorCategory.DEADLINE, ErrorCategory.SOURCE), (o.fault, o.value.reason)


def _cid(peer: str, fault: str) -> str:
    return f"dl_{peer}_{fault}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def servers() -> Iterator[Callable[..., FaultServer]]:
    """Start fault servers for one test; all stopped at its end."""
    with ExitStack() as stack:

        def start(fault: str | None = None, **kwargs: Any) -> FaultServer:
            return stack.enter_context(fault_server(fault, **kwargs))

        yield start


# -- no token held: one clear ERROR within the bound ----------------------------------------------------------


@pytest.mark.parametrize("peer", ["token_endpoint", "discovery"])
def test_an_identity_provider_that_stalls_costs_one_error_within_the_deadline(
    stack: Stack,
    servers: Callable[..., FaultServer],
    peer: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = _backend(url=stack.bao.url, token=stack.bao.root_token)
    calls = []
    for fault in FAULTS:
        server, cid = servers(fault), _cid(peer, fault)
        where = {"token_url": f"{server.url}/token"} if peer == "token_endpoint" else {"issuer": server.url}
        stack.put(f"connections/{cid}", stack.kong_connection(**{"token_url": None, **where}))
        calls.append((fault, cid, lambda cid=cid: backend.get_connection(cid)))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        outcomes = _concurrently(calls)
    _report(peer, outcomes)
    _assert_one_clear_error(outcomes, caplog)


def test_vault_that_stalls_costs_one_error_within_the_deadline(
    stack: Stack, servers: Callable[..., FaultServer], caplog: pytest.LogCaptureFixture
) -> None:
    calls = []
    for fault in FAULTS:
        server, cid = servers(fault), _cid("vault", fault)
        backend = _backend(**stack.backend_kwargs(url=server.url))  # the AppRole login meets the fault first
        calls.append((fault, cid, lambda b=backend, cid=cid: b.get_connection(cid)))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        outcomes = _concurrently(calls)
    _report("vault", outcomes)
    _assert_one_clear_error(outcomes, caplog)


def test_vault_jwks_that_stalls_costs_one_error_within_the_deadline(
    stack: Stack, servers: Callable[..., FaultServer], caplog: pytest.LogCaptureFixture
) -> None:
    """vault_identity: Vault signs the token (forwarded), then its JWKS, which the backend verifies it with, stalls."""
    calls = []
    for fault in WARM_FAULTS:
        server, cid = servers(fault, upstream=stack.bao.url, only=JWKS_PATH), _cid("jwks", fault)
        stack.put(f"connections/{cid}", stack.flow_connection("vault_identity"))
        backend = _backend(**stack.backend_kwargs(url=server.url))
        calls.append((fault, cid, lambda b=backend, cid=cid: b.get_connection(cid)))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        outcomes = _concurrently(calls)
    _report("vault_jwks", outcomes)
    _assert_one_clear_error(outcomes, caplog)
    assert all(o.value.reason == "deadline" for o in outcomes)


# A user's own botocore Config (backend kwarg ``config_kwargs``) may give botocore long timeouts and retries of its
# own: then only the deadline (the abandoned worker) ends a peer that drips.
USERS_BOTOCORE_CONFIG = {"connect_timeout": 60, "read_timeout": 60, "retries": {"mode": "standard", "max_attempts": 5}}


@pytest.mark.parametrize("config", ["default", "users_long_timeouts"])
def test_secrets_manager_that_stalls_costs_one_error_within_the_deadline(
    stack: Stack, aws_env: Moto, servers: Callable[..., FaultServer], config: str, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {"config_kwargs": USERS_BOTOCORE_CONFIG} if config == "users_long_timeouts" else {}
    calls = []
    for fault in FAULTS:
        server, cid = servers(fault), _cid("aws", fault)
        aws_env.put_secret(f"airflow/connections/{cid}", _aws_secret(stack))
        backend = _backend(source="aws", region_name="eu-central-1", endpoint_url=server.url, **extra)
        calls.append((fault, cid, lambda b=backend, cid=cid: b.get_connection(cid)))
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        outcomes = _concurrently(calls)
    _report(f"aws({config})", outcomes)
    _assert_one_clear_error(outcomes, caplog)
    if config == "users_long_timeouts":
        assert all(o.value.reason == "deadline" for o in outcomes)


def test_a_botocore_credential_chain_that_stalls_is_abandoned_at_the_deadline(
    stack: Stack,
    aws_env: Moto,
    servers: Callable[..., FaultServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No keys in the environment; the container credentials endpoint (the chain's next provider) drips its answer.
    botocore's own timeouts never fire; the resolution stops waiting at the deadline."""
    provider = servers("drip_body")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{provider.url}/credentials")
    cid = _cid("aws_credentials", "drip_body")
    aws_env.put_secret(f"airflow/connections/{cid}", _aws_secret(stack))
    backend = _backend(source="aws", region_name="eu-central-1", endpoint_url=aws_env.url)
    with caplog.at_level(logging.ERROR, logger="kong_secrets_backend"):
        outcome = _timed("drip_body", cid, lambda: backend.get_connection(cid))
    _report("aws_credential_chain", [outcome])
    _assert_one_clear_error([outcome], caplog)
    assert provider.faulted >= 1
    assert isinstance(outcome.value, KongAuthError) and outcome.value.reason == "deadline"


def _aws_secret(stack: Stack) -> dict[str, Any]:
    host, port = stack.gateway_host_port()
    return {"conn_type": "http", "host": host, "port": port, "schema": "http", "kong_auth": stack.kong_auth()}


# -- a still-valid token held: served within the bound ---------------------------------------------------------


def test_a_held_token_is_served_within_the_deadline_while_the_token_endpoint_stalls(
    stack: Stack, servers: Callable[..., FaultServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens of 8 s (tests/faulty_idp.py's /switch/): after 4 s each resolution tries to refresh, meets the
    fault, and serves the token it holds."""
    backend = _backend(url=stack.bao.url, token=stack.bao.root_token, refresh_jitter=0)
    with faulty_idp() as idp:
        held, calls = {}, []
        for fault in WARM_FAULTS:
            server, cid = servers(upstream=idp), _cid("idp_warm", fault)
            stack.put(f"connections/{cid}", stack.kong_connection(token_url=f"{server.url}/switch/{cid}"))
            held[cid] = _warm(backend, cid)
            server.fault = fault
            calls.append((fault, cid, lambda cid=cid: backend.get_connection(cid)))
        time.sleep(_Handler.switch_expires_in / 2 + 0.1)  # into the refresh window
        with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
            outcomes = _concurrently(calls)
    _report("token_endpoint(held)", outcomes)
    for o in outcomes:
        assert o.seconds <= BOUND, (o.fault, o.seconds)
        assert _token(o.value) == held[o.conn_id], o.fault
    assert caplog.text.count("serving the current token") == len(WARM_FAULTS)


@pytest.mark.parametrize("peer", ["vault", "aws"])
def test_a_held_token_is_served_within_the_deadline_while_the_source_stalls(
    stack: Stack,
    servers: Callable[..., FaultServer],
    peer: str,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """The connection secret is due for a new read (credential_cache_ttl 0.2 s) and the source stalls: the
    connection read last, and its token, are served."""
    upstream = stack.bao.url if peer == "vault" else request.getfixturevalue("aws_env").url
    held, calls = {}, []
    for fault in WARM_FAULTS:
        server, cid = servers(upstream=upstream), _cid(f"{peer}_warm", fault)
        if peer == "vault":
            stack.put(f"connections/{cid}", stack.kong_connection())
            backend = _backend(**stack.backend_kwargs(url=server.url, credential_cache_ttl=0.2))
        else:
            request.getfixturevalue("aws_env").put_secret(f"airflow/connections/{cid}", _aws_secret(stack))
            backend = _backend(
                source="aws", region_name="eu-central-1", endpoint_url=server.url, credential_cache_ttl=0.2
            )
        held[cid] = _warm(backend, cid)
        server.fault = fault
        calls.append((fault, cid, lambda b=backend, cid=cid: b.get_connection(cid)))
    time.sleep(0.3)  # past the credential TTL: each resolution reads the source, which stalls
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
        outcomes = _concurrently(calls)
    _report(f"{peer}(held)", outcomes)
    for o in outcomes:
        assert o.seconds <= BOUND, (o.fault, o.seconds)
        assert _token(o.value) == held[o.conn_id], o.fault
        assert f"serving conn_id {o.conn_id} from the secret last read" in caplog.text, o.fault


# -- the shared token caches: their round trips and lock waits ---------------------------------------------------


def test_a_redis_token_cache_that_never_answers_costs_a_resolution_no_more_than_the_deadline(
    stack: Stack, servers: Callable[..., FaultServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that accepts and never answers: the resolution mints for itself, within the bound."""
    redis = servers("hang")
    cid = _cid("redis", "hang")
    stack.put(f"connections/{cid}", stack.kong_connection())
    backend = _backend(url=stack.bao.url, token=stack.bao.root_token, token_cache=f"redis://127.0.0.1:{redis.port}/0")
    with caplog.at_level(logging.WARNING, logger="kong_secrets_backend"):
        outcome = _timed("hang", cid, lambda: backend.get_connection(cid))
    _report("redis", [outcome])
    assert outcome.seconds <= BOUND
    assert _token(outcome.value).startswith("Bearer ")
    assert "token cache Redis at redis://127.0.0.1" in caplog.text


def test_a_file_token_cache_lock_held_by_another_process_costs_no_more_than_the_deadline(
    stack: Stack, tmp_path: Path
) -> None:
    """Another process holds the credential's lock and never mints: this one waits half its deadline, then mints."""
    from filelock import FileLock

    cid = _cid("file_lock", "held")
    stack.put(f"connections/{cid}", stack.kong_connection())
    kwargs = {
        "url": stack.bao.url,
        "token": stack.bao.root_token,
        "token_cache": "file",
        "token_cache_dir": str(tmp_path),
    }
    first = _token(_backend(**kwargs).get_connection(cid))
    for entry in tmp_path.glob("*.tok"):
        entry.unlink()
    reset_runtimes()
    PROCESS.tokens.clear()  # a new process: nothing in memory, nothing in the cache, the lock held elsewhere
    locks = [FileLock(path, thread_local=False) for path in tmp_path.glob("*.lock")]
    assert locks
    for lock in locks:
        lock.acquire()
    try:
        outcome = _timed("held", cid, lambda: _backend(**kwargs).get_connection(cid))
    finally:
        for lock in locks:
            lock.release()
    _report("file_lock", [outcome])
    assert outcome.seconds <= BOUND
    assert _token(outcome.value) != first  # minted here, after waiting
