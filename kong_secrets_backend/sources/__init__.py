"""Secret sources: where connection secrets and Kong credentials are read from.

A source reads one secret by kind and key and returns its fields plus where it came from; it knows
nothing of Kong. Each source reads exactly as the official Airflow backend of the same store does
(``VaultBackend``, ``SecretsManagerBackend``). ``build_source`` picks the implementation lazily, so a
Vault user never imports boto3 and an AWS user never imports hvac.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from kong_secrets_backend.sources.aws_settings import AwsSettings
    from kong_secrets_backend.sources.vault_settings import VaultSettings
    from kong_secrets_backend.transport.deadline import Deadline

SecretKind = Literal["connections", "variables", "config"]
SOURCES = ("vault", "aws")


@dataclass(frozen=True)
class SecretRecord:
    """One secret's fields, the path it was read from, and its version when the source has one.

    ``plain`` is what the official backend returns from ``get_conn_value`` for this secret when it
    holds no ``kong_auth`` (for Vault that is derived from ``data``; AWS keeps the raw SecretString or
    its re-keyed JSON). None means "derive it from data".
    """

    data: dict[str, Any] = field(repr=False)
    path: str
    version: str | None = None
    plain: str | None = field(default=None, repr=False)


class SecretSource(Protocol):
    def describe(self, kind: SecretKind, key: str, team_name: str | None = None) -> str:
        """The path (or paths) a key of this kind is looked up at, for messages."""

    def read(self, kind: SecretKind, key: str, deadline: Deadline, team_name: str | None = None) -> SecretRecord | None:
        """The secret for key, or None when no configured path holds it."""

    def read_path(self, path: str, deadline: Deadline) -> SecretRecord | None:
        """The secret at an absolute path of this source (used by ``credentials_path``)."""

    # Optional capability, looked up with getattr by the resolver (AWS only):
    # ``read_pending(kind: "connections" | "credentials", name, deadline) -> SecretRecord | None``, the version
    # a rotation staged but has not made current yet, tried once when the IdP refuses the current credential.


def build_source(source: str, *, vault: VaultSettings | None, aws: AwsSettings | None, deadline: float) -> SecretSource:
    """The source client for the settings of ``source`` (the other one's are None); no I/O here."""
    if source == "vault" and vault is not None:
        from kong_secrets_backend.sources.vault import VaultSource

        return VaultSource(vault)
    if source == "aws" and aws is not None:
        from kong_secrets_backend.sources.aws import AwsSource

        return AwsSource(aws, deadline=deadline)
    raise ValueError(f"no settings for source {source!r}")  # parse_backend_kwargs refuses it first
