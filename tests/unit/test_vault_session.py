"""The Vault token's life (vault_session.py) on a scripted Vault and a controlled clock.

The real-server counterparts (renewal, max TTL, 403, one live token) are in tests/integration/test_sources_vault.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kong_secrets_backend.sources import vault_session
from kong_secrets_backend.sources.vault_session import VaultSession
from kong_secrets_backend.sources.vault_settings import parse_vault_settings
from kong_secrets_backend.transport.deadline import Deadline
from tests.unit.vault_fake import URL, FakeVault

READ = "/v1/secret/data/connections/x"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.vault-token


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(vault_session, "time", fake)
    return fake


def session_on(fake: FakeVault, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> VaultSession:
    settings = parse_vault_settings({"url": URL, "auth_type": "approle", "role_id": "r", "secret_id": "s", **kwargs})
    session = VaultSession(settings)
    monkeypatch.setattr(session, "_session", fake.session)
    return session


def read(session: VaultSession) -> Any:
    return session.call(
        lambda client: client.secrets.kv.v2.read_secret_version(path="connections/x", raise_on_deleted_version=True),
        Deadline(60),  # the first use imports Airflow's masker: seconds on a busy machine
    )


def summary(fake: FakeVault) -> list[tuple[str, str | None]]:
    short = {READ: "read"}
    return [(short.get(c.path, c.path.rsplit("/", 1)[-1]), c.token) for c in fake.calls]


def test_a_renewable_token_is_renewed_once_two_thirds_of_its_ttl_have_passed(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVault(lease_duration=30)
    session = session_on(fake, monkeypatch)
    read(session)
    clock.now += 19
    read(session)
    clock.now += 2  # 21 s of 30: due
    read(session)
    read(session)
    assert summary(fake) == [
        ("login", None),
        ("read", "tok-1"),
        ("read", "tok-1"),
        ("renew-self", "tok-1"),
        ("read", "tok-1"),
        ("read", "tok-1"),
    ]
    assert (session.logins, session.renewals, session.revocations) == (1, 1, 0)


def test_a_renewal_that_no_longer_extends_the_token_is_followed_by_a_new_login_and_a_revocation(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVault(lease_duration=30)
    session = session_on(fake, monkeypatch)
    read(session)
    fake.answers["/v1/auth/token/renew-self"] = lambda call: (200, {"auth": {"lease_duration": 9, "renewable": True}})
    clock.now += 21
    read(session)
    assert summary(fake)[2:] == [("renew-self", "tok-1"), ("login", None), ("revoke-self", "tok-1"), ("read", "tok-2")]
    assert (session.logins, session.renewals, session.revocations) == (2, 1, 1)


@pytest.mark.parametrize("answer", ["not_renewable", "renewal_fails"])
def test_a_token_that_cannot_be_renewed_is_replaced_after_two_thirds_of_its_ttl(
    answer: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVault(lease_duration=30, renewable=answer != "not_renewable")
    if answer == "renewal_fails":
        fake.answers["/v1/auth/token/renew-self"] = lambda call: (500, {"errors": ["past the max TTL"]})
    session = session_on(fake, monkeypatch)
    read(session)
    clock.now += 21
    read(session)
    paths = [p for p, _ in summary(fake)]
    assert paths[-3:] == ["login", "revoke-self", "read"]
    assert summary(fake)[-1] == ("read", "tok-2") and session.logins == 2


def test_a_failed_new_login_keeps_the_still_valid_token_and_tries_again_later(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVault(lease_duration=30, renewable=False)
    session = session_on(fake, monkeypatch)
    read(session)
    fake.answers["/v1/auth/approle/login"] = lambda call: (503, {"errors": ["sealed"]})
    clock.now += 21
    read(session)  # login fails: the current token (9 s left) is still served
    read(session)  # no new attempt within RETRY_AFTER_FAILURE
    assert summary(fake)[-3:] == [("login", None), ("read", "tok-1"), ("read", "tok-1")]
    del fake.answers["/v1/auth/approle/login"]
    clock.now += vault_session.RETRY_AFTER_FAILURE
    read(session)
    assert summary(fake)[-1] == ("read", "tok-2")


def test_a_403_logs_in_again_once_revoking_the_refused_token(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import hvac.exceptions

    fake = FakeVault()
    session = session_on(fake, monkeypatch)
    read(session)
    fake.answers[READ] = lambda call: (403, {"errors": ["permission denied"]}) if call.token == "tok-1" else (200, {})
    read(session)
    assert summary(fake)[2:] == [("read", "tok-1"), ("revoke-self", "tok-1"), ("login", None), ("read", "tok-2")]
    fake.answers[READ] = lambda call: (403, {"errors": ["permission denied"]})
    with pytest.raises(hvac.exceptions.Forbidden):
        read(session)
    assert session.logins == 3  # once per 403, never in a loop


def test_a_given_token_is_looked_up_renewed_when_periodic_and_never_revoked(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVault(lease_duration=60)
    session = session_on(fake, monkeypatch, auth_type="token", token="s.given-token")
    read(session)
    clock.now += 41
    read(session)
    fake.answers[READ] = lambda call: (403, {"errors": ["permission denied"]})
    with pytest.raises(Exception, match="permission denied"):
        read(session)
    paths = [p for p, _ in summary(fake)]
    assert paths[:4] == ["lookup-self", "read", "renew-self", "read"]
    assert "revoke-self" not in paths
    assert {c.token for c in fake.calls} == {"s.given-token"}


def test_a_root_token_that_never_expires_is_never_renewed(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVault(lease_duration=0, renewable=False)
    session = session_on(fake, monkeypatch, auth_type="token", token="s.root-token")
    for _ in range(3):
        read(session)
        clock.now += 10_000
    assert [p for p, _ in summary(fake)] == ["lookup-self", "read", "read", "read"]


def test_a_rotated_token_file_is_read_again_when_its_token_is_due(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text("s.first-token\n")
    fake = FakeVault(lease_duration=30, renewable=False)
    session = session_on(fake, monkeypatch, auth_type="token", token_path=str(path))
    read(session)
    path.write_text("s.second-token\n")  # a Vault agent rotated it
    clock.now += 21
    read(session)
    assert [c.token for c in fake.calls if c.path == READ] == ["s.first-token", "s.second-token"]


def test_concurrent_first_uses_log_in_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVault()
    session = session_on(fake, monkeypatch)
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        read(session)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c.path for c in fake.calls].count("/v1/auth/approle/login") == 1


def test_a_forked_child_keeps_the_token_without_logging_in_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVault()
    session = session_on(fake, monkeypatch)
    read(session)
    parent_client = session.client
    session._pid = -1  # as seen from a forked child
    read(session)
    assert session.client is not parent_client and session.logins == 1
    assert [c.token for c in fake.calls if c.path == READ] == ["tok-1", "tok-1"]
