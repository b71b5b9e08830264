"""Airflow provider registration (the ``apache_airflow_provider`` entry point).

With it, ``airflow providers list`` shows this package and ``airflow providers secrets`` lists the backend.
Airflow compares ``package-name`` with the installed distribution's name and refuses the mismatch in every
CLI command, so it is read from one constant that a test checks against the distribution's metadata.
"""

from __future__ import annotations

from typing import Any

DISTRIBUTION = "kong-secrets-backend"
BACKEND_CLASS = "kong_secrets_backend.KongSecretsBackend"


def get_provider_info() -> dict[str, Any]:
    from kong_secrets_backend import __version__

    return {
        "package-name": DISTRIBUTION,
        "name": "Kong Secrets Backend",
        "description": (
            "Secrets backend that reads Kong credentials from HashiCorp Vault or AWS Secrets Manager and hands "
            "HttpOperator, HttpSensor and HttpHook connections a fresh bearer token for Kong Gateway."
        ),
        "versions": [__version__],
        "secrets-backends": [BACKEND_CLASS],
    }
