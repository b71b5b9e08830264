#!/usr/bin/env bash
# Create the AppRole that kong-secrets-backend logs in with, bound to kong-secrets-backend.hcl.
#
#   VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=<admin token> \
#     examples/vault/setup-approle.sh [ROLE] [POLICY] [SECRET_ID_FILE]
#
# Prints the role_id; writes a new secret_id to SECRET_ID_FILE (mode 0600, default ./<ROLE>.secret-id),
# never to the terminal. Safe to run again: the policy and role are updated, and each run adds a secret_id.
# Environment: VAULT_BIN (default "vault"; "bao" for OpenBao), APPROLE_MOUNT (default "approle"),
# POLICY_FILE (default: kong-secrets-backend.hcl beside this script), TOKEN_TTL (1h), TOKEN_MAX_TTL (4h),
# SECRET_ID_TTL (default 0: does not expire; set e.g. 720h and rotate).
# Then: backend_kwargs {"auth_type": "approle", "role_id": "<printed>", "auth_mount_point": "<APPROLE_MOUNT
# if not approle>", ...} and AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__SECRET_ID=$(cat SECRET_ID_FILE).
set -euo pipefail

vault_bin=${VAULT_BIN:-vault}
role=${1:-airflow-kong}
policy=${2:-kong-secrets-backend}
secret_id_file=${3:-./${role}.secret-id}
mount=${APPROLE_MOUNT:-approle}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
policy_file=${POLICY_FILE:-$here/kong-secrets-backend.hcl}

: "${VAULT_ADDR:?set VAULT_ADDR to the Vault address}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a token allowed to manage auth methods and policies}"
[ -r "$policy_file" ] || { echo "cannot read policy file $policy_file" >&2; exit 1; }

# (read the whole list first: `... | grep -q` under pipefail fails when grep stops reading early)
auth_methods=$("$vault_bin" auth list -format=json)
case "$auth_methods" in
  *"\"${mount}/\""*) ;;
  *)
    "$vault_bin" auth enable -path="$mount" approle >/dev/null
    echo "enabled AppRole at auth/${mount}" >&2
    ;;
esac

"$vault_bin" policy write "$policy" "$policy_file" >/dev/null
echo "wrote policy ${policy}" >&2

"$vault_bin" write "auth/${mount}/role/${role}" \
  token_policies="$policy" \
  token_type=service \
  token_ttl="${TOKEN_TTL:-1h}" \
  token_max_ttl="${TOKEN_MAX_TTL:-4h}" \
  secret_id_ttl="${SECRET_ID_TTL:-0}" \
  secret_id_num_uses=0 >/dev/null
echo "wrote role ${role}" >&2

role_id=$("$vault_bin" read -field=role_id "auth/${mount}/role/${role}/role-id")
(
  umask 077
  "$vault_bin" write -f -field=secret_id "auth/${mount}/role/${role}/secret-id" >"$secret_id_file"
)
chmod 600 "$secret_id_file"
echo "secret_id written to ${secret_id_file} (mode 0600)" >&2
echo "role_id=${role_id}"
