"""The demo: the real local stack, then the unchanged example DAG calling the API through the gateway.

scripts/demo        (or: .venv/bin/python -m devstack.demo)
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from pathlib import Path

from devstack.airflow import EXAMPLE_DAGS, dags_test, prepare_airflow
from devstack.stack import running_stack


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def say(mark: str, text: str) -> None:
    print(f"  {mark} {text}", flush=True)


def main() -> int:
    print("kong-secrets-backend demo: Vault-held Kong credential -> token -> unchanged HttpOperator DAG\n")
    with tempfile.TemporaryDirectory(prefix="kong-demo-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        say("✓", f"OpenBao dev server      {stack.bao.url}  (AppRole 'airflow', read-only policy)")
        say("✓", f"Identity provider       {stack.idp.issuer}  (panva oidc-provider, client_credentials, RS256 JWTs)")
        say("✓", f"Gateway                 {stack.gateway.url}  (HAProxy as Kong openid-connect + rate-limiting)")
        secret = stack.kong_connection()
        stack.put("connections/kong_orders", secret)
        shown = {**secret, "kong_auth": {**secret["kong_auth"], "client_secret": "***"}}
        say("✓", "Stored secret/connections/kong_orders:")
        for line in json.dumps(shown, indent=2).splitlines():
            print(f"        {line}")
        af = prepare_airflow(
            Path(tmp),
            backend="kong_secrets_backend.KongSecretsBackend",
            backend_kwargs=stack.backend_kwargs(),
            dags_folder=EXAMPLE_DAGS,
        )
        say("→", "airflow dags test kong_orders   (examples/dags/kong_orders.py: a plain HttpOperator, no auth code)")
        stack.idp.reset_counts()
        result = dags_test(af, "kong_orders")
        if not result.ok:
            say("✗", f"the DAG run failed ({result.dag_run_state}); last output:")
            print(result.all_output[-4000:])
            return 1
        say("✓", f"DAG run succeeded in {result.duration:.1f}s (task states: {result.task_states})")
        request = stack.gateway.received()[-1]
        token = request["headers"]["authorization"].removeprefix("Bearer ")
        claims = _claims(token)
        say(
            "✓",
            f"Gateway verified the token and forwarded GET {request['path']} as consumer "
            f"{request['headers']['x-consumer-username']!r}",
        )
        exp = int(claims["exp"])  # type: ignore[call-overload]
        say(
            " ",
            f"token claims: sub={claims['sub']} aud={claims['aud']} scope={claims['scope']} "
            f"expires in {exp - int(time.time())}s",
        )
        say("✓", f"Token requests at the IdP for this run: {stack.idp.token_requests()}")
        leaked = [s for s in [*stack.planted_secrets(), token] if s in result.all_output]
        lines = result.all_output.count("\n")
        say(
            "✓" if not leaked else "✗",
            f"Client secret, Vault credentials and token in Airflow's output: "
            f"{'none' if not leaked else len(leaked)} ({lines} lines scanned)",
        )
        print("\nStack stopped. The example DAG and the secret schema are in examples/ and docs/flows.md.")
        return 0 if not leaked else 1


if __name__ == "__main__":
    sys.exit(main())
