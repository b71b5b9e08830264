"""The token keeper's rules, on a fake clock: rotation, refusal, re-read, pending version, retried tries."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kong_secrets_backend.airflow_bridge.task import TaskIdentity
from kong_secrets_backend.cache.memory import MemoryTokenCache
from kong_secrets_backend.connection import KongAuth, KongConnection
from kong_secrets_backend.errors import AccessDenied, TokenEndpointError
from kong_secrets_backend.sources import SecretRecord
from kong_secrets_backend.tokens import Origin, RefreshPolicy, Token
from kong_secrets_backend.tokens.broker import TokenBroker
from kong_secrets_backend.tokens.keeper import TokenKeeper
from kong_secrets_backend.transport.deadline import Deadline

KEY = ("connections", "orders", "")
LIFETIME = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class FakeCredential:
    client_id: str
    secret: str = field(repr=False)
    version: str | None = None
    header_name: str = "Authorization"
    header_scheme: str = "Bearer"
    flow: str = "fake"

    def secret_values(self) -> tuple[str, ...]:
        return (self.secret,)

    def cache_key(self) -> str:
        return f"fake:{self.client_id}:{self.secret}:{self.version}"


class FakeFlow:
    name = "fake"
    static = False

    def __init__(self, credential: FakeCredential, clock: Clock, idp: FakeIdp) -> None:
        self.credential, self.clock, self.idp = credential, clock, idp

    def cache_key(self) -> str:
        return self.credential.cache_key()

    def cache_secret(self) -> bytes | None:
        return None

    def mint(self, deadline: Deadline) -> Token:
        return self.idp.mint(self.credential, self.clock.now)


class FakeIdp:
    def __init__(self) -> None:
        self.accepted: set[str] = set()
        self.minted: list[str] = []

    def mint(self, credential: FakeCredential, now: float) -> Token:
        if credential.secret not in self.accepted:
            raise TokenEndpointError("refused", status=401, oauth_error="invalid_client")
        value = f"token-{len(self.minted) + 1}-{credential.secret}"
        self.minted.append(value)
        return Token(value=value, issued_at=now, expires_at=now + LIFETIME, flow="fake")


class Reader:
    def __init__(self, reread: KongConnection | None = None, pending: KongConnection | None = None) -> None:
        self._reread, self._pending = reread, pending
        self.calls: list[str] = []

    def reread(self, deadline: Deadline) -> KongConnection | None:
        self.calls.append("reread")
        return self._reread

    def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
        self.calls.append("pending")
        return self._pending


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idp() -> FakeIdp:
    return FakeIdp()


@pytest.fixture
def keeper(clock: Clock) -> TokenKeeper:
    broker = TokenBroker(MemoryTokenCache(), RefreshPolicy(min_margin=60, jitter=0), clock=clock)
    return TokenKeeper(broker, monotonic=clock)


def connection(secret: str, clock: Clock, idp: FakeIdp, *, version: str = "1", client_id: str = "c") -> KongConnection:
    credential = FakeCredential(client_id=client_id, secret=secret, version=version)
    record = SecretRecord(data={"conn_type": "http"}, path="secret/connections/orders", version=version)
    return KongConnection(record=record, auth=KongAuth(credential=credential), flow=FakeFlow(credential, clock, idp))  # type: ignore[arg-type]


def serve(keeper: TokenKeeper, conn: KongConnection, reader: Reader | None = None, task: TaskIdentity | None = None):  # type: ignore[no-untyped-def]
    return keeper.serve(KEY, conn, Deadline(5), task=task, reader=reader or Reader(), label="conn_id orders")


def test_a_fresh_token_is_reused_and_a_cold_one_is_minted(keeper: TokenKeeper, clock: Clock, idp: FakeIdp) -> None:
    idp.accepted.add("s1")
    conn = connection("s1", clock, idp)
    keeper.adopt(KEY, conn)
    first, second = serve(keeper, conn), serve(keeper, conn)
    assert (first.origin, second.origin) == (Origin.MINTED, Origin.MEMORY)
    assert first.token is second.token and idp.minted == ["token-1-s1"]


def test_a_rotation_serves_the_previous_versions_token_until_it_ages(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    idp.accepted.update({"s1", "s2"})
    old = connection("s1", clock, idp, version="1")
    keeper.adopt(KEY, old)
    minted = serve(keeper, old).token
    new = connection("s2", clock, idp, version="2")
    keeper.adopt(KEY, new)
    clock.now += 100
    held = serve(keeper, new)
    assert held.origin is Origin.PREVIOUS_VERSION and held.token is minted and len(idp.minted) == 1
    clock.now += LIFETIME - 100 - 30  # the old token left its fresh state: the new version mints
    renewed = serve(keeper, new)
    assert renewed.origin is Origin.MINTED and renewed.token.value == "token-2-s2"
    assert serve(keeper, new).origin is Origin.MEMORY


def test_a_change_that_is_not_a_rotation_takes_effect_at_once(keeper: TokenKeeper, clock: Clock, idp: FakeIdp) -> None:
    idp.accepted.add("s1")
    keeper.adopt(KEY, (old := connection("s1", clock, idp)))
    serve(keeper, old)
    other_client = connection("s1", clock, idp, client_id="another", version="2")
    keeper.adopt(KEY, other_client)
    assert serve(keeper, other_client).origin is Origin.MINTED


def test_a_refused_new_version_is_covered_by_the_previous_token_while_it_is_usable(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    idp.accepted.add("s1")
    keeper.adopt(KEY, (old := connection("s1", clock, idp, version="1")))
    minted = serve(keeper, old).token
    keeper.adopt(KEY, (new := connection("s2", clock, idp, version="2")))  # the IdP does not know s2 yet
    clock.now += LIFETIME - 40  # past the old token's fresh state, still usable
    served = serve(keeper, new)
    assert served.origin is Origin.PREVIOUS_VERSION and served.token is minted


def test_a_refused_credential_is_read_again_and_tried_once_when_it_changed(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    held = connection("revoked", clock, idp, version="1")
    keeper.adopt(KEY, held)
    idp.accepted.add("s2")
    rotated = connection("s2", clock, idp, version="2")
    reader = Reader(reread=rotated)
    served = serve(keeper, held, reader)
    assert served.connection is rotated and served.origin is Origin.MINTED and reader.calls == ["reread"]
    assert keeper.last(KEY) is rotated


def test_an_unchanged_refused_credential_tries_the_pending_version_once(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    current = connection("s1", clock, idp, version="1")
    keeper.adopt(KEY, current)
    idp.accepted.add("pending")
    pending = connection("pending", clock, idp, version="AWSPENDING")
    reader = Reader(reread=current, pending=pending)
    served = serve(keeper, current, reader)
    assert served.connection is pending and reader.calls == ["reread", "pending"]


def test_the_refusal_is_reported_when_nothing_else_can_be_tried(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    current = connection("s1", clock, idp)
    keeper.adopt(KEY, current)
    refused_too = connection("also-refused", clock, idp, version="AWSPENDING")
    with pytest.raises(TokenEndpointError, match="refused"):
        serve(keeper, current, Reader(reread=current, pending=refused_too))


def test_a_failure_that_is_not_a_refusal_is_not_followed_by_a_re_read(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    current = connection("s1", clock, idp)
    keeper.adopt(KEY, current)

    def down(credential: FakeCredential, now: float) -> Token:
        raise TokenEndpointError("bad request", status=400, oauth_error="invalid_scope")

    idp.mint = down  # type: ignore[method-assign]
    reader = Reader(reread=current)
    with pytest.raises(TokenEndpointError):
        serve(keeper, current, reader)
    assert reader.calls == []


def test_the_first_resolution_of_a_retried_try_mints_afresh_once(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    idp.accepted.add("s1")
    conn = connection("s1", clock, idp)
    keeper.adopt(KEY, conn)
    serve(keeper, conn)
    retry = TaskIdentity(dag_id="d", task_id="t", run_id="r", try_number=2)
    assert serve(keeper, conn, task=retry).origin is Origin.MINTED
    assert serve(keeper, conn, task=retry).origin is Origin.MEMORY
    first_try = TaskIdentity(dag_id="d", task_id="t2", run_id="r", try_number=1)
    assert serve(keeper, conn, task=first_try).origin is Origin.MEMORY


def test_a_connection_is_current_for_max_age_and_last_survives_it(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    conn = connection("s1", clock, idp)
    keeper.adopt(KEY, conn)
    assert keeper.current(KEY, max_age=60) is conn
    clock.now += 61
    assert keeper.current(KEY, max_age=60) is None
    assert keeper.last(KEY) is conn


def test_a_pending_version_refusing_the_task_is_the_answer_not_the_idps_refusal(
    keeper: TokenKeeper, clock: Clock, idp: FakeIdp
) -> None:
    current = connection("s1", clock, idp)
    keeper.adopt(KEY, current)
    idp.accepted.add("pending")

    class RefusingReader(Reader):
        def pending(self, current: KongConnection, deadline: Deadline) -> KongConnection | None:
            raise AccessDenied("conn_id 'orders' may not be used by dag_id 'marketing'")

    with pytest.raises(AccessDenied, match="marketing"):
        serve(keeper, current, RefusingReader(reread=current))
    assert idp.minted == [] and keeper.last(KEY) is current  # nothing minted, nothing adopted
