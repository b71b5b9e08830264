"""The OpenBao dev server harness (devstack/openbao.py) against a real ``bao server -dev``."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from devstack.openbao import OpenBao, start_openbao

POLICY = "airflow-read"
ROLE = "airflow"

# Set while the server starts; the harness must not pass any of them on.
CALLER_ENV = {
    "VAULT_TOKEN": "caller-token",
    "VAULT_ADDR": "http://127.0.0.1:1",
    "BAO_TOKEN": "caller-token",
    "BAO_ADDR": "http://127.0.0.1:1",
    "BAO_LOG_LEVEL": "trace",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openbao")


@pytest.fixture(scope="module")
def bao(workdir: Path) -> Iterator[OpenBao]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CALLER_ENV.items():
            mp.setenv(name, value)
        server = start_openbao(workdir)
    try:
        yield server
    finally:
        server.stop()
        if server.proc.alive():  # not yet reaped, so the PID is still ours: never leave bao behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.proc.pid, signal.SIGKILL)


def _server_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def test_health_and_root_token(bao: OpenBao) -> None:
    health = bao.health()
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health["standby"] is False
    assert str(health["version"]).startswith("2.")
    assert bao.url.startswith("http://127.0.0.1:")
    assert len(bao.root_token) == 32 and int(bao.root_token, 16) >= 0  # secrets.token_hex(16)
    root = bao.client()
    assert root.is_authenticated()
    assert "root" in root.auth.token.lookup_self()["data"]["policies"]
    assert not bao.client(token="").is_authenticated()


def test_server_environment_is_scrubbed(bao: OpenBao, workdir: Path) -> None:
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc")
    env = _server_environ(bao.proc.pid)
    assert env.get("HOME") == str(workdir)
    assert not [k for k in env if k.startswith(("VAULT_", "BAO_"))]
    assert not (workdir / ".vault-token").exists()
    assert (workdir / "openbao.log").exists()


def test_kv_v2_versions_increment(bao: OpenBao) -> None:
    bao.enable_kv("secret", 2)  # already there in dev mode: no-op
    assert bao.put_secret("secret", "connections/versions", {"conn_uri": "one"}) == 1
    assert bao.put_secret("secret", "connections/versions", {"conn_uri": "two"}) == 2
    assert bao.put_secret("secret", "connections/versions", {"conn_uri": "three"}) == 3
    kv2 = bao.client().secrets.kv.v2
    latest = kv2.read_secret_version("connections/versions", mount_point="secret", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"conn_uri": "three"}
    assert latest["data"]["metadata"]["version"] == 3
    first = kv2.read_secret_version(
        "connections/versions", version=1, mount_point="secret", raise_on_deleted_version=True
    )
    assert first["data"]["data"] == {"conn_uri": "one"}

    bao.delete_secret("secret", "connections/versions")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv2.read_secret_version("connections/versions", mount_point="secret", raise_on_deleted_version=True)
    assert bao.put_secret("secret", "connections/versions", {"conn_uri": "again"}) == 1  # metadata is gone too


def test_kv_v1_mount(bao: OpenBao) -> None:
    bao.enable_kv("kv1", 1)
    bao.enable_kv("kv1", 1)  # idempotent
    mounts = bao.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts["kv1/"]["type"] == "kv"
    assert (mounts["kv1/"].get("options") or {}).get("version", "1") == "1"
    with pytest.raises(RuntimeError, match="KV v2"):
        bao.enable_kv("secret", 1)

    assert bao.put_secret("kv1", "connections/legacy", {"conn_uri": "http://h"}, kv_version=1) is None
    kv1 = bao.client().secrets.kv.v1
    assert kv1.read_secret("connections/legacy", mount_point="kv1")["data"] == {"conn_uri": "http://h"}
    bao.put_secret("kv1", "connections/legacy", {"conn_uri": "http://h2"}, kv_version=1)
    assert kv1.read_secret("connections/legacy", mount_point="kv1")["data"] == {"conn_uri": "http://h2"}
    bao.delete_secret("kv1", "connections/legacy", kv_version=1)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv1.read_secret("connections/legacy", mount_point="kv1")


def test_read_only_policy_text() -> None:
    hcl = OpenBao.read_only_policy("secret", ["connections", "/variables/"])
    assert hcl.count("path ") == 4
    for target in (
        "secret/data/connections/*",
        "secret/metadata/connections/*",
        "secret/data/variables/*",
        "secret/metadata/variables/*",
    ):
        assert f'path "{target}" {{\n  capabilities = ["read"]\n}}' in hcl
    assert hcl.count('capabilities = ["read"]') == 4
    v1 = OpenBao.read_only_policy("kv1", ["connections"], kv_version=1)
    assert v1 == 'path "kv1/connections/*" {\n  capabilities = ["read"]\n}\n'
    with pytest.raises(ValueError):
        OpenBao.read_only_policy("secret", ['x" {}'])


def test_approle_with_read_only_policy(bao: OpenBao) -> None:
    bao.put_secret("secret", "connections/x", {"conn_uri": "https://kong.example.test"})
    bao.put_secret("secret", "other/x", {"password": "not for airflow"})
    policy = bao.read_only_policy("secret", ["connections"])
    role_id, secret_id = bao.setup_approle(ROLE, POLICY, policy, token_ttl="15m")
    role_id_again, secret_id_again = bao.setup_approle(ROLE, POLICY, policy, token_ttl="15m")  # idempotent
    assert role_id_again == role_id
    assert secret_id_again != secret_id
    assert bao.client().sys.read_policy(POLICY)["data"]["rules"] == policy

    app = bao.client(token="")
    login = app.auth.approle.login(role_id=role_id, secret_id=secret_id)
    assert app.token == login["auth"]["client_token"]
    assert set(login["auth"]["token_policies"]) == {"default", POLICY}
    assert login["auth"]["lease_duration"] == 15 * 60

    kv2 = app.secrets.kv.v2
    got = kv2.read_secret_version("connections/x", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"conn_uri": "https://kong.example.test"}
    assert kv2.read_secret_metadata("connections/x", mount_point="secret")["data"]["current_version"] >= 1
    with pytest.raises(hvac.exceptions.Forbidden):
        kv2.create_or_update_secret("connections/x", secret={"conn_uri": "evil"}, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        kv2.read_secret_version("other/x", mount_point="secret", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        kv2.list_secrets("connections", mount_point="secret")

    with pytest.raises(hvac.exceptions.InvalidRequest):  # OpenBao answers a bad secret_id with 400
        bao.client(token="").auth.approle.login(role_id=role_id, secret_id="not-the-secret-id")
    still = bao.client(token="")
    still.auth.approle.login(role_id=role_id, secret_id=secret_id_again)  # older secret_id still valid too
    assert still.is_authenticated()


def test_request_count_is_exact(bao: OpenBao) -> None:
    """`request_count()` is the server's own count of requests handled by its core (Prometheus telemetry).

    The summaries behind it are cumulative and updated before the response is sent, and the dev server makes no
    background API requests, so with nothing else talking to the server the difference around a known sequence
    of requests is exact:

    * reading the metrics is not itself counted (two reads in a row agree);
    * ``sys/health`` is answered by the HTTP layer and not counted;
    * every other call counts once -- successful reads and writes, logins (counted as login requests), 403s for a
      missing token or a denied path, and 404s for missing secrets.
    """
    before = bao.request_count()
    assert before >= 3  # the dev server's own start-up requests (root token and the secret/ mount)
    assert bao.request_count() == before
    bao.health()
    assert bao.request_count() == before

    root = bao.client()
    kv2 = root.secrets.kv.v2
    role_id, secret_id = bao.setup_approle(ROLE, POLICY, bao.read_only_policy("secret", ["connections"]))
    after_setup = bao.request_count()
    # list auth mounts, write the policy, write the role, read role_id, generate secret_id
    assert after_setup - before == 5

    assert bao.put_secret("secret", "connections/counted", {"n": "1"}) is not None  # 1
    kv2.read_secret_version("connections/counted", mount_point="secret", raise_on_deleted_version=True)  # 2
    with pytest.raises(hvac.exceptions.InvalidPath):  # 3: 404
        kv2.read_secret_version("connections/missing", mount_point="secret", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):  # 4: 403, no token
        bao.client(token="").secrets.kv.v2.read_secret_version(
            "connections/counted", mount_point="secret", raise_on_deleted_version=True
        )
    app = bao.client(token="")
    app.auth.approle.login(role_id=role_id, secret_id=secret_id)  # 5: a login request
    with pytest.raises(hvac.exceptions.Forbidden):  # 6: 403, denied by policy
        app.secrets.kv.v2.read_secret_version("other/x", mount_point="secret", raise_on_deleted_version=True)
    bao.health()  # not counted
    known = 6

    after = bao.request_count()
    assert after - after_setup >= known  # the lower bound holds whatever else may talk to the server
    assert after - after_setup == known  # and nothing else does here
