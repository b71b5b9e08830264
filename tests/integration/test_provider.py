"""Provider registration: Airflow lists the backend, and the entry point breaks no Airflow command.

Airflow refuses a provider whose ``package-name`` differs from its distribution's name, in every CLI command, so
the real `airflow` CLI is run (with this backend configured) rather than trusting the dict.
"""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from devstack.airflow import EXAMPLE_DAGS, airflow_bin, prepare_airflow
from devstack.stack import Stack
from kong_secrets_backend.provider import get_provider_info
from tests.conftest import assert_no_secrets


def test_provider_info_names_the_installed_distribution_and_matches_airflows_schema() -> None:
    [ours] = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("kong_secrets_backend")]
    assert ours.value == "kong_secrets_backend.provider:get_provider_info"
    info = ours.load()()
    assert info == get_provider_info()
    assert info["package-name"] == canonicalize_name(ours.dist.metadata["name"]) == "kong-secrets-backend"
    assert info["versions"] == [distribution("kong-secrets-backend").version]
    assert info["secrets-backends"] == ["kong_secrets_backend.KongSecretsBackend"]

    from airflow._shared.providers_discovery.providers_discovery import _create_provider_info_schema_validator

    _create_provider_info_schema_validator().validate(info)


@pytest.mark.e2e
def test_airflow_cli_lists_the_backend_and_still_works_with_it_configured(stack: Stack, tmp_path: Path) -> None:
    af = prepare_airflow(
        tmp_path,
        backend="kong_secrets_backend.KongSecretsBackend",
        backend_kwargs=stack.backend_kwargs(),
        dags_folder=EXAMPLE_DAGS,
    )

    def airflow(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(airflow_bin()), *args], env=af.env, cwd=af.home, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert_no_secrets(done.stdout + done.stderr, stack.planted_secrets())
        return done

    backends = json.loads(airflow("providers", "secrets", "--output", "json").stdout)
    assert {"secrets_backend_class_name": "kong_secrets_backend.KongSecretsBackend"} in backends
    airflow("dags", "list", "--output", "json")
