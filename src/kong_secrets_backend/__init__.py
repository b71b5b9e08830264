"""kong-secrets-backend: an Airflow secrets backend that hands HttpOperator a fresh Kong token.

Import cost is kept low: ``KongSecretsBackend`` (and with it Airflow's base class) is imported only
when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["KongSecretsBackend", "__version__"]

if TYPE_CHECKING:
    from kong_secrets_backend.backend import KongSecretsBackend


def __getattr__(name: str) -> Any:
    if name == "KongSecretsBackend":
        from kong_secrets_backend.backend import KongSecretsBackend

        return KongSecretsBackend
    raise AttributeError(f"module 'kong_secrets_backend' has no attribute {name!r}")
