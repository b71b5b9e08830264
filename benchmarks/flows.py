"""Mint cost per kong_auth flow on the real local stack, and the private-key import that authlib repeats.

.venv/bin/python benchmarks/flows.py [--n N]

Prints two markdown tables: the median time of one mint per flow (a token request to oidc-provider, a local
signature, or a Vault identity token), bypassing the token cache; and the cost of signing one private_key_jwt
client assertion with the key imported once (this backend) against authlib's default path, which imports the
PEM again for every request.

Airflow's secrets masker is switched off while mints are timed: every token is registered with it, and its
``add_mask`` recompiles one regex of every secret the process has registered, so that the cost of a mint would
grow with the number of tokens minted before it (measured here: about 1 ms for the first JWT-sized token, 80 ms
for the 40th, 330 ms for the 200th). A third table shows that growth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _median_ms(fn: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30, help="mints per flow")
    args = parser.parse_args()

    import logging

    logging.disable(logging.INFO)
    from authlib.oauth2.rfc7523 import private_key_jwt_sign

    import kong_secrets_backend.airflow_bridge.masking as masking
    from devstack.stack import running_stack
    from kong_secrets_backend.flows import build_flow, parse_credential
    from kong_secrets_backend.flows.client_credentials import ClientCredentialsFlow
    from kong_secrets_backend.settings import parse_backend_kwargs
    from kong_secrets_backend.state import runtime_for
    from kong_secrets_backend.transport.deadline import Deadline

    real_masker = masking._masker
    masking._masker = lambda: None  # type: ignore[assignment]

    flows = {
        "client_credentials, client_secret_basic": None,
        "client_credentials, client_secret_jwt (HS256)": "client_secret_jwt",
        "client_credentials, private_key_jwt (RS256, issuer discovery)": "private_key_jwt",
        "client_credentials, private_key_jwt (ES256)": "private_key_jwt_ec",
        "kong_jwt (HS256)": "kong_jwt",
        "kong_jwt (RS256)": "kong_jwt_rs256",
        "kong_jwt (ES256)": "kong_jwt_es256",
        "key_auth": "key_auth",
        "vault_identity (ES256, verified against Vault's JWKS)": "vault_identity",
    }
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        config = parse_backend_kwargs(stack.backend_kwargs())
        runtime = runtime_for(config)
        rows = []
        for label, name in flows.items():
            block = stack.kong_auth() if name is None else stack.flow_auth(name)
            cred = parse_credential(block, settings=config, version=None)
            flow = build_flow(cred, http=runtime.http, settings=config, source=runtime.source)
            flow.mint(Deadline(10))  # warm: Vault login, discovery, JWKS, connections
            median, p90 = _median_ms(lambda flow=flow: flow.mint(Deadline(10)), args.n)
            rows.append((label, median, p90))

        pk = stack.flow_auth("private_key_jwt_ec", token_url=stack.idp.token_url)
        pk_rsa = stack.flow_auth("private_key_jwt", issuer=None, token_url=stack.idp.token_url)
        sign_rows = []
        for label, block in (("RS256 (2048-bit)", pk_rsa), ("ES256", pk)):
            ours = ClientCredentialsFlow(
                parse_credential(block, settings=config, version=None),  # type: ignore[arg-type]
                http=runtime.http,
                settings=config,
            )
            mine, _ = _median_ms(lambda ours=ours: ours.client_assertion(stack.idp.token_url), args.n * 5)
            pem = block["private_key"]
            alg = "RS256" if "RS" in label else "ES256"
            theirs, _ = _median_ms(
                lambda pem=pem, alg=alg, block=block: private_key_jwt_sign(
                    pem, block["client_id"], stack.idp.token_url, alg=alg
                ),
                args.n * 5,
            )
            sign_rows.append((label, mine, theirs))

    import secrets

    masking._masker = real_masker  # type: ignore[assignment]
    masking.mask("warm-up-value-0123456789")  # imports Airflow's masker
    growth = []
    for i in range(1, 201):
        value = "eyJ" + secrets.token_urlsafe(600)
        started = time.perf_counter()
        masking.mask(value)
        if i in (1, 10, 50, 100, 200):
            growth.append((i, (time.perf_counter() - started) * 1000))

    print(f"\nOne mint, bypassing the token cache (median and p90 of {args.n}, ms):\n")
    print("| flow | median | p90 |")
    print("|---|---|---|")
    for label, median, p90 in rows:
        print(f"| {label} | {median:.2f} | {p90:.2f} |")
    print("\nSigning one private_key_jwt client assertion (median, ms):\n")
    print("| key | key imported once (this backend) | authlib `private_key_jwt_sign` with the PEM |")
    print("|---|---|---|")
    for label, mine, theirs in sign_rows:
        print(f"| {label} | {mine:.3f} | {theirs:.3f} |")
    print("\nAirflow's masker: registering the n-th JWT-sized token in one process (ms):\n")
    print("| n | " + " | ".join(str(n) for n, _ in growth) + " |")
    print("|---|" + "---|" * len(growth))
    print("| ms | " + " | ".join(f"{ms:.1f}" for _, ms in growth) + " |")


if __name__ == "__main__":
    main()
