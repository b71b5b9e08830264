"""``flow: vault_identity``: Vault signs an identity token for the backend's own Vault identity; no client secret."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kong_secrets_backend.credentials.fields import DEFAULT_HEADER, Fields
from kong_secrets_backend.errors import SecretFormatError

_ROLE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class VaultIdentity:
    role: str  # identity/oidc/token/<role>
    header_name: str = DEFAULT_HEADER
    version: str | None = None

    flow = "vault_identity"
    header_scheme = "Bearer"

    def secret_values(self) -> tuple[str, ...]:
        return ()

    def cache_key(self) -> str:
        # The token also depends on who logged in to Vault: the flow adds the backend settings' fingerprint.
        return "vi:" + hashlib.sha256(f"{self.role}\0{self.version}".encode()).hexdigest()


def parse_vault_identity(block: Mapping[str, Any], *, version: str | None, source: str) -> VaultIdentity:
    if source != "vault":
        raise SecretFormatError(
            f"kong_auth.flow 'vault_identity' needs source 'vault' (this backend reads from {source!r})"
        )
    f = Fields(block, allowed=frozenset({"role"}), flow="vault_identity")
    role = f.required_str("role")
    if not _ROLE.fullmatch(role):
        raise SecretFormatError("kong_auth.role must be a Vault identity OIDC role name (letters, digits, _ . -)")
    return VaultIdentity(role=role, header_name=f.header_name(), version=version)
