"""The same API called through Kong five ways, one task per way Kong authenticates machine callers.

Nothing here is about auth: each task's connection holds a different `kong_auth` block, and the secrets backend
returns it with the header its Kong route expects.

- `private_key_jwt`: client_credentials, the client signs an assertion with its private key; the token endpoint
  comes from the IdP's OpenID discovery document (openid-connect plugin).
- `client_secret_jwt`: client_credentials, the assertion is signed with the client secret (openid-connect plugin).
- `kong_jwt`: the backend signs the JWT itself with the Kong consumer's jwt credential (jwt plugin).
- `key_auth`: a static API key in the `apikey` header (key-auth plugin).
- `vault_identity`: Vault signs an identity token for the backend's own Vault identity (openid-connect plugin
  trusting Vault as the issuer): no client secret exists anywhere.
"""

from __future__ import annotations

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

# task id -> (connection, Kong route)
FLOWS = {
    "private_key_jwt": ("kong_orders_private_key_jwt", "/orders"),
    "client_secret_jwt": ("kong_orders_client_secret_jwt", "/orders"),
    "kong_jwt": ("kong_orders_kong_jwt", "/jwt-orders"),
    "key_auth": ("kong_orders_key_auth", "/key-orders"),
    "vault_identity": ("kong_orders_vault_identity", "/vault-orders"),
}

with DAG(dag_id="kong_auth_flows", schedule=None):
    for task_id, (conn_id, endpoint) in FLOWS.items():
        HttpOperator(task_id=task_id, http_conn_id=conn_id, endpoint=endpoint, method="GET", log_response=True)
