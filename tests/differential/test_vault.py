"""KongSecretsBackend == VaultBackend on the same OpenBao, for every plain secret of the corpus.

Each scenario builds both backends from the same kwargs (KV v2 and v1, mount_point None, lists of paths,
the deprecated global_secrets_path, a disabled kind, multi-team with and without a team, AppRole and token
auth) and compares get_conn_value, every Connection field and extra_dejson, get_variable and get_config.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from airflow.providers.hashicorp.secrets.vault import VaultBackend
from airflow.sdk.definitions.connection import Connection

from devstack.stack import KV1_MOUNT, Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from tests.differential.compare import differences
from tests.differential.corpus import VAULT_CONFIG, VAULT_CONNECTIONS, VAULT_VARIABLES

pytestmark = pytest.mark.usefixtures("fresh_process_state")

TEAM = "team_a"
PREFIX = f"d{uuid.uuid4().hex[:6]}_"  # this session's ids: the stack's OpenBao is shared by the whole suite
CONNS = [PREFIX + name for name in VAULT_CONNECTIONS]
VARS = [PREFIX + name for name in VAULT_VARIABLES]
CFGS = [PREFIX + name for name in VAULT_CONFIG]
MISSING = [PREFIX + "missing"]


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    bao = stack.bao
    for mount, version in (("secret", 2), (KV1_MOUNT, 1)):
        for name, data in VAULT_CONNECTIONS.items():
            bao.put_secret(mount, f"connections/{PREFIX}{name}", data, kv_version=version)
        for name, data in VAULT_VARIABLES.items():
            bao.put_secret(mount, f"variables/{PREFIX}{name}", data, kv_version=version)
        for name, data in VAULT_CONFIG.items():
            bao.put_secret(mount, f"config/{PREFIX}{name}", data, kv_version=version)
    # Lists of paths: half the connections only under the second path, the other half under both (first wins).
    names = list(VAULT_CONNECTIONS)
    for i, name in enumerate(names):
        bao.put_secret("secret", f"diff-second/{PREFIX}{name}", VAULT_CONNECTIONS[name])
        if i % 2:
            bao.put_secret("secret", f"diff-first/{PREFIX}{name}", VAULT_CONNECTIONS[names[i - 1]])
    # Multi-team: the team's own copies live one level down.
    for name, data in list(VAULT_CONNECTIONS.items())[:8]:
        bao.put_secret("secret", f"connections/{TEAM}/{PREFIX}{name}", data)
    for name, data in VAULT_VARIABLES.items():
        bao.put_secret("secret", f"variables/{TEAM}/{PREFIX}{name}", {**data, "team": TEAM})
    bao.put_secret("secret", f"connections/{PREFIX}nested/leaf", {"conn_type": "http", "host": "nested"})
    return stack


def pair(**kwargs: Any) -> tuple[KongSecretsBackend, VaultBackend]:
    ours = KongSecretsBackend(**kwargs)
    official = VaultBackend(**kwargs)
    for backend in (ours, official):
        set_connection_class(backend, Connection)
    return ours, official


def root(stack: Stack, **extra: Any) -> dict[str, Any]:
    return {"url": stack.bao.url, "auth_type": "token", "token": stack.bao.root_token, **extra}


SCENARIOS: dict[str, dict[str, Any]] = {
    "kv2_defaults": {},
    "kv1": {"mount_point": KV1_MOUNT, "kv_engine_version": 1},
    "list_of_paths_tried_in_order": {"connections_path": ["diff-missing", "diff-first", "diff-second"]},
    "global_secrets_path_fallback": {"connections_path": "diff-missing", "global_secrets_path": "diff-second/"},
    "kinds_disabled": {"connections_path": None, "variables_path": None, "config_path": None},
    "trailing_slashes": {"connections_path": "connections/", "variables_path": ["variables//"]},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_plain_secrets_come_back_exactly_as_vault_backend_returns_them(seeded: Stack, scenario: str) -> None:
    ours, official = pair(**root(seeded, **SCENARIOS[scenario]))
    objects = scenario in ("kv2_defaults", "kv1")  # the Connection objects too where the values are all there
    diff = differences(
        ours, official, connections=CONNS + MISSING, variables=VARS + MISSING, config=CFGS + MISSING, objects=objects
    )
    assert diff == []


def test_approle_login_reads_the_same_as_vault_backend(seeded: Stack) -> None:
    ours, official = pair(**seeded.backend_kwargs())
    assert differences(ours, official, connections=CONNS, variables=VARS, config=CFGS, objects=False) == []


def test_mount_point_none_takes_the_mount_from_the_first_segment(seeded: Stack) -> None:
    ours, official = pair(**root(seeded, mount_point=None))
    keys = [f"secret/{c}" for c in CONNS] + [f"{KV1_MOUNT}/{CONNS[0]}", CONNS[0], f"nomount/{CONNS[0]}"]
    assert ours.get_conn_value(f"secret/{CONNS[0]}") is not None
    assert differences(ours, official, connections=keys, variables=[f"secret/{v}" for v in VARS], objects=False) == []


@pytest.mark.parametrize("team_name", [TEAM, None])
def test_multi_team_paths_match_vault_backend(
    seeded: Stack, monkeypatch: pytest.MonkeyPatch, team_name: str | None
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    ours, official = pair(**root(seeded))
    nested = [f"{PREFIX}nested/leaf"]  # refused without a team: it could name a team's secret
    diff = differences(
        ours,
        official,
        connections=CONNS + nested + MISSING,
        variables=VARS,
        config=CFGS,
        team_name=team_name,
        objects=False,
    )
    assert diff == []
    if team_name is not None:
        assert ours.get_variable(VARS[0], team_name=team_name) == VAULT_VARIABLES["plain"]["value"]
    else:
        assert ours.get_conn_value(nested[0]) is None
