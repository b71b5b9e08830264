"""kong-secrets-backend: an Airflow secrets backend that hands HttpOperator a fresh Kong token.

Import cost is kept low: ``KongSecretsBackend`` (and with it Airflow's base class) is imported only
when first used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms at import)

__version__ = "0.1.0"
__all__ = ["KongSecretsBackend", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from kong_secrets_backend.backend import KongSecretsBackend


def __getattr__(name: str) -> Any:
    if name == "KongSecretsBackend":
        from kong_secrets_backend.backend import KongSecretsBackend

        return KongSecretsBackend
    raise AttributeError(f"module 'kong_secrets_backend' has no attribute {name!r}")
