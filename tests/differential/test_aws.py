"""KongSecretsBackend(source="aws") == SecretsManagerBackend on the same moto server, for every plain secret.

Each scenario builds both backends from the same kwargs (default and custom prefixes, a custom ``sep``, no
prefix, a disabled kind, lookup patterns, extra_conn_words, teams, multi-team refusals) and compares
get_conn_value, every Connection field and extra_dejson, get_variable and get_config.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend
from airflow.sdk.definitions.connection import Connection

from devstack.moto import REGION, Moto
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.airflow_bridge.compat import set_connection_class
from tests.differential.compare import differences
from tests.differential.corpus import AWS_CONFIG, AWS_CONNECTIONS, AWS_VARIABLES, EXTRA_CONN_WORDS

pytestmark = pytest.mark.usefixtures("fresh_process_state", "aws_env")

TEAM = "team_a"
PREFIX = f"d{uuid.uuid4().hex[:6]}_"
CONNS = [PREFIX + name for name in AWS_CONNECTIONS]
VARS = [PREFIX + name for name in AWS_VARIABLES]
CFGS = [PREFIX + name for name in AWS_CONFIG]
MISSING = [PREFIX + "missing"]
TEAM_SEP_ID = PREFIX + "x--y"


@pytest.fixture(scope="module")
def seeded(moto: Moto) -> Moto:
    for prefix, sep in (("airflow/connections", "/"), ("kong.conns", "."), ("", "/")):
        for name, value in AWS_CONNECTIONS.items():
            moto.put_secret(f"{prefix}{sep}{PREFIX}{name}" if prefix else f"{PREFIX}{name}", value)
    for name, value in AWS_VARIABLES.items():
        moto.put_secret(f"airflow/variables/{PREFIX}{name}", value)
        moto.put_secret(f"kong.vars.{PREFIX}{name}", value)
    for name, value in AWS_CONFIG.items():
        moto.put_secret(f"airflow/config/{PREFIX}{name}", value)
    # Team-scoped copies: <prefix>/<team>--<id>, tried before <prefix>/<id>.
    for name in list(AWS_CONNECTIONS)[:5]:
        moto.put_secret(f"airflow/connections/{TEAM}--{PREFIX}{name}", "http://team.example.com")
    moto.put_secret(f"airflow/variables/{TEAM}--{PREFIX}plain", "team value")
    moto.put_secret(f"airflow/connections/{TEAM_SEP_ID}", "http://ambiguous.example.com")
    return moto


def pair(moto: Moto, **kwargs: Any) -> tuple[KongSecretsBackend, SecretsManagerBackend]:
    client = {"region_name": REGION, "endpoint_url": moto.url}
    ours = KongSecretsBackend(source="aws", **client, **kwargs)
    official = SecretsManagerBackend(**client, **kwargs)
    for backend in (ours, official):
        set_connection_class(backend, Connection)
    return ours, official


SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom_prefixes_and_sep": {
        "connections_prefix": "kong.conns.",
        "variables_prefix": "kong.vars",
        "config_prefix": "kong.missing",
        "sep": ".",
    },
    "no_prefix": {"connections_prefix": "", "variables_prefix": None, "config_prefix": None},
    "lookup_patterns": {
        "connections_lookup_pattern": f"^{PREFIX}(URI|json_a)",  # case-insensitive, as re.match
        "variables_lookup_pattern": "^nothing",
        "config_lookup_pattern": f"{PREFIX}sql",
    },
    "extra_conn_words": {"extra_conn_words": EXTRA_CONN_WORDS},
    "empty_lookup_pattern_matches_all": {"connections_lookup_pattern": ""},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_plain_secrets_come_back_exactly_as_secrets_manager_backend_returns_them(seeded: Moto, scenario: str) -> None:
    ours, official = pair(seeded, **SCENARIOS[scenario])
    everything = CONNS + MISSING + [TEAM_SEP_ID]
    objects = scenario in ("defaults", "extra_conn_words")  # the Connection objects: where the values differ most
    diff = differences(
        ours, official, connections=everything, variables=VARS + MISSING, config=CFGS + MISSING, objects=objects
    )
    assert diff == []


def test_team_scoped_names_are_tried_first_as_secrets_manager_backend_does(seeded: Moto) -> None:
    ours, official = pair(seeded)
    assert differences(ours, official, connections=CONNS + MISSING, variables=VARS, team_name=TEAM, objects=False) == []
    assert ours.get_conn_value(CONNS[0], team_name=TEAM) == "http://team.example.com"
    assert ours.get_variable(VARS[0], team_name=TEAM) == "team value"


def test_multi_team_refuses_ids_with_the_team_separator_like_secrets_manager_backend(
    seeded: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    ours, official = pair(seeded)
    for team in (None, TEAM):
        assert differences(ours, official, connections=[TEAM_SEP_ID, *CONNS[:3]], team_name=team, objects=False) == []
    assert ours.get_conn_value(TEAM_SEP_ID) is None
