"""A real moto server (AWS Secrets Manager and STS, in memory) for tests and benchmarks.

`start_moto(workdir)` runs ``moto_server`` (from the venv's ``moto[server]``) on a free 127.0.0.1 port and
returns a `Moto` handle; `Moto.stop()` kills it by PID. Clients made by `Moto.client()` use fixed test
credentials and the server's URL explicitly, whatever the caller's AWS environment says; `Moto.env()` is
the environment a process needs to reach it through the standard boto3 chain (credentials, region, no
config files of the caller).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import procs
from devstack.procs import Proc

REGION = "eu-central-1"
ACCESS_KEY_ID = "AKIAMOTOTESTKEY00001"
SECRET_ACCESS_KEY = "moto-test-secret-access-key"  # moto accepts any credentials
ACCOUNT_ID = "123456789012"  # moto's default account


def moto_server_binary() -> str:
    candidate = Path(sys.executable).with_name("moto_server")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError(f"moto_server not found next to {sys.executable} nor on PATH; install moto[server]")
    return found


@dataclass
class Moto:
    url: str
    proc: Proc
    workdir: Path
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def env(self) -> dict[str, str]:
        """Environment for a process that reaches this server through the standard boto3 chain."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(self.workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str = "secretsmanager") -> Any:
        """A boto3 client of this server (made once per service: building one costs ~0.1 s)."""
        client = self._clients.get(service)
        if client is None:
            import boto3

            from kong_secrets_backend.sources.aws import withhold_secret_strings_from_botocore_logs

            withhold_secret_strings_from_botocore_logs()  # the tests' own writes carry secrets too

            client = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
            ).client(service, endpoint_url=self.url)
            self._clients[service] = client
        return client

    def put_secret(self, name: str, value: str | Mapping[str, Any]) -> str:
        """Create the secret, or store a new AWSCURRENT version; returns its VersionId."""
        text = value if isinstance(value, str) else json.dumps(value)
        sm = self.client()
        try:
            resp = sm.create_secret(Name=name, SecretString=text)
        except sm.exceptions.ResourceExistsException:
            resp = sm.put_secret_value(SecretId=name, SecretString=text)
        return str(resp["VersionId"])

    def put_pending(self, name: str, value: str | Mapping[str, Any]) -> str:
        """Store a version staged AWSPENDING only (what a rotation writes before it finishes)."""
        text = value if isinstance(value, str) else json.dumps(value)
        resp = self.client().put_secret_value(SecretId=name, SecretString=text, VersionStages=["AWSPENDING"])
        return str(resp["VersionId"])

    def create_role(self, name: str) -> str:
        """An IAM role anyone may assume (moto does not enforce policies); returns its ARN."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
        iam = self.client("iam")
        try:
            return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
        except iam.exceptions.EntityAlreadyExistsException:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])

    def stop(self) -> None:
        self.proc.stop()


def start_moto(workdir: Path, *, timeout: float = 30.0) -> Moto:
    """Start ``moto_server`` on a free 127.0.0.1 port; ready when ``/moto-api/`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    last_error: RuntimeError | None = None
    for _ in range(3):  # the port may be taken between probing and binding
        port = procs.free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            proc = procs.start(
                "moto",
                [moto_server_binary(), "-H", "127.0.0.1", "-p", str(port)],
                log_dir=workdir,
                ready=functools.partial(procs.http_ok, f"{url}/moto-api/"),
                cwd=workdir,
                timeout=timeout,
            )
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) and "address already in use" not in str(exc):
                raise
            last_error = exc
            continue
        return Moto(url=url, proc=proc, workdir=workdir)
    assert last_error is not None
    raise last_error
