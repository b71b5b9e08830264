# Vault / OpenBao policy for kong-secrets-backend: read what Airflow looks up, nothing else.
#
# Paths assume the backend's defaults (VaultBackend's): KV v2 mounted at "secret", connections under
# "connections", variables under "variables", config under "config". Change the mount and prefixes to your
# backend_kwargs. Only "read": no list (the backend never lists), no write, no metadata, no delete.

# Connection secrets, with or without kong_auth: secret/connections/<conn_id>
path "secret/data/connections/*" {
  capabilities = ["read"]
}

# Variables and config options, as Airflow's VaultBackend reads them.
path "secret/data/variables/*" {
  capabilities = ["read"]
}

path "secret/data/config/*" {
  capabilities = ["read"]
}

# Shared Kong credentials that many connections reference with kong_auth.credentials_path
# (e.g. "credentials_path": "kong-credentials/orders", a path in the same mount), so one rotation updates them all.
path "secret/data/kong-credentials/*" {
  capabilities = ["read"]
}

# KV v1 instead of v2 (kv_engine_version 1): there is no "data/" segment, e.g.
# path "kv/connections/*" { capabilities = ["read"] }

# The vault_identity flow (Vault signs the token, no client secret anywhere): allow the backend's own
# identity to request tokens from one identity OIDC role, e.g.
# path "identity/oidc/token/airflow-kong" { capabilities = ["read"] }
#
# Renewing and looking up its own token is granted by Vault's built-in "default" policy.
