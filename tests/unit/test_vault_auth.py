"""Each Vault auth type makes the same HTTP calls as Airflow's own VaultBackend client, at the hvac boundary.

hvac runs for real on both sides; a recording transport (tests/unit/vault_fake.py) stands in for Vault. The
official ``_VaultClient`` and this project's ``vault_auth.login`` get the same kwargs, and the recorded
requests (method, path, JSON body, token) must be identical, with and without ``auth_mount_point``. The auth
types OpenBao serves (token, approle, userpass, jwt, cert) are also tested against a real server in
tests/integration/test_sources_vault.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import hvac
import pytest
from airflow.providers.hashicorp._internal_client.vault_client import _VaultClient

from kong_secrets_backend.errors import ConfigError, SourceError
from kong_secrets_backend.sources.vault_auth import Lease, login
from kong_secrets_backend.sources.vault_settings import parse_vault_settings
from tests.unit.vault_fake import URL, Call, FakeVault


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token from the caller's environment or ~/.vault-token; fixed AWS test credentials."""
    for name in ("VAULT_TOKEN", "VAULT_ADDR", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST00000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-test-aws-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def official_calls(kwargs: dict[str, Any]) -> list[Call]:
    fake = FakeVault()
    client = _VaultClient(url=URL, session=fake.session(), **kwargs)
    with contextlib.suppress(hvac.exceptions.VaultError):  # azure/radius complain after their calls; calls count
        _ = client.client
    return fake.calls


def our_calls(kwargs: dict[str, Any]) -> tuple[list[Call], Lease | None]:
    fake = FakeVault()
    settings = parse_vault_settings({"url": URL, **kwargs})
    client = hvac.Client(url=URL, session=fake.session())
    lease = login(client, settings.auth)
    return fake.calls, lease


def comparable(calls: list[Call]) -> list[tuple[str, str, Any, str | None]]:
    """aws_iam bodies carry a SigV4 signature and a timestamp: compare everything else."""
    out = []
    for c in calls:
        body = c.body
        if isinstance(body, dict) and "iam_request_headers" in body:
            headers = json.loads(base64.b64decode(body["iam_request_headers"]))
            for volatile in ("Authorization", "X-Amz-Date"):
                headers.pop(volatile, None)
            body = {**body, "iam_request_headers": headers}
        out.append((c.method, c.path, body, c.token))
    return out


def kwarg_cases(tmp_path: Path) -> dict[str, dict[str, Any]]:
    jwt_file, k8s_file = tmp_path / "jwt", tmp_path / "k8s"
    if tmp_path.is_dir():
        jwt_file.write_text("header.payload.signature\n")
        k8s_file.write_text("k8s.service.account\n")
    return {
        "approle": {"auth_type": "approle", "role_id": "role-1", "secret_id": "secret-1"},
        "approle_without_secret_id": {"auth_type": "approle", "role_id": "role-1"},
        "userpass": {"auth_type": "userpass", "username": "u", "password": "p4ss"},
        "ldap": {"auth_type": "ldap", "username": "u", "password": "p4ss"},
        "jwt_token": {"auth_type": "jwt", "jwt_role": "r", "jwt_token": " header.payload.signature "},
        "jwt_token_path": {"auth_type": "jwt", "jwt_role": "r", "jwt_token_path": str(jwt_file)},
        "kubernetes": {"auth_type": "kubernetes", "kubernetes_role": "kr", "kubernetes_jwt_path": str(k8s_file)},
        "github": {"auth_type": "github", "token": "ghp_unit_test_token"},
        "aws_iam_keys": {"auth_type": "aws_iam", "key_id": "AKIAKEYID", "secret_id": "aws-secret", "role_id": "r"},
        "aws_iam_boto3_chain": {"auth_type": "aws_iam", "region": "us-east-2"},
        "azure": {
            "auth_type": "azure",
            "azure_tenant_id": "tenant",
            "azure_resource": "https://vault.example.com",
            "key_id": "client",
            "secret_id": "azure-secret",
        },
        "radius": {
            "auth_type": "radius",
            "radius_host": "radius.example.com",
            "radius_secret": "rs",
            "radius_port": 1812,
        },
        "token": {"auth_type": "token", "token": "s.unit-test-token"},
    }


CASES = list(kwarg_cases(Path("/nonexistent")))


@pytest.mark.parametrize("mount", [None, "custom-mount"])
@pytest.mark.parametrize("case", CASES)
def test_login_makes_the_same_vault_calls_as_vault_backend(
    case: str, mount: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case in ("azure", "radius"):
        monkeypatch.setenv("VAULT_TOKEN", "env-token-for-configure")  # they `configure`, with the environment's token
    kwargs = kwarg_cases(tmp_path)[case]
    if mount:
        kwargs["auth_mount_point"] = mount
    expected = comparable(official_calls(kwargs))
    calls, _ = our_calls(kwargs)
    assert comparable(calls) == expected
    if case != "token":
        assert len(calls) == 1
        assert (mount or "") in calls[0].path


def test_aws_iam_with_assume_role_kwargs_assumes_the_role_like_vault_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    seen: list[dict[str, Any]] = []

    class FakeSts:
        meta = types.SimpleNamespace(region_name="ap-south-1")

        def assume_role(self, **kw: Any) -> dict[str, Any]:
            seen.append(kw)
            creds = {"AccessKeyId": "ASIAROLE", "SecretAccessKey": "role-secret", "SessionToken": "role-session"}
            return {"Credentials": creds}

    monkeypatch.setattr(boto3, "client", lambda service, **_: FakeSts())
    kwargs = {
        "auth_type": "aws_iam",
        "assume_role_kwargs": {"RoleArn": "arn:aws:iam::1:role/r", "RoleSessionName": "s"},
    }
    expected = comparable(official_calls(kwargs))
    calls, _ = our_calls(kwargs)
    assert comparable(calls) == expected
    assert seen == [kwargs["assume_role_kwargs"]] * 2


def test_gcp_signs_a_jwt_through_iam_and_logs_in_like_vault_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Google provider is not installed here: stand-ins at its boundary, the same for both clients."""
    signed: list[dict[str, Any]] = []

    class Request:
        def __init__(self, name: str, body: dict[str, Any]) -> None:
            self.name, self.body = name, body

        def execute(self) -> dict[str, str]:
            payload = json.loads(self.body["payload"])
            signed.append({"name": self.name, "sub": payload["sub"], "aud": payload["aud"]})
            return {"signedJwt": "gcp.signed.jwt"}

    class Iam:
        def projects(self) -> Iam:
            return self

        def serviceAccounts(self) -> Iam:
            return self

        def signJwt(self, name: str, body: dict[str, Any]) -> Request:
            return Request(name, body)

    creds = types.SimpleNamespace(service_account_email="sa@proj.iam.gserviceaccount.com")
    provider = types.ModuleType("credentials_provider")
    provider._get_scopes = lambda scopes: scopes.split(",")  # type: ignore[attr-defined]
    provider.get_credentials_and_project_id = lambda **kw: (creds, "proj")  # type: ignore[attr-defined]
    discovery = types.ModuleType("googleapiclient.discovery")
    discovery.build = lambda *a, **kw: Iam()  # type: ignore[attr-defined]
    googleapiclient = types.ModuleType("googleapiclient")
    googleapiclient.discovery = discovery  # type: ignore[attr-defined]
    for name in ("airflow.providers.google", "airflow.providers.google.cloud", "airflow.providers.google.cloud.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "airflow.providers.google.cloud.utils.credentials_provider", provider)
    monkeypatch.setitem(sys.modules, "googleapiclient", googleapiclient)
    monkeypatch.setitem(sys.modules, "googleapiclient.discovery", discovery)
    kwargs = {"auth_type": "gcp", "role_id": "vault-role", "gcp_scopes": "a,b", "gcp_key_path": "/k.json"}
    expected = comparable(official_calls(kwargs))
    calls, _ = our_calls(kwargs)
    assert comparable(calls) == expected
    assert calls[0].path == "/v1/auth/gcp/login" and calls[0].body == {"role": "vault-role", "jwt": "gcp.signed.jwt"}
    assert (
        signed[0]
        == signed[1]
        == {
            "name": "projects/proj/serviceAccounts/sa@proj.iam.gserviceaccount.com",
            "sub": "sa@proj.iam.gserviceaccount.com",
            "aud": "vault/vault-role",
        }
    )


def test_gcp_without_the_google_provider_is_a_clear_error() -> None:
    settings = parse_vault_settings({"url": URL, "auth_type": "gcp", "role_id": "r", "gcp_scopes": "s"})
    with pytest.raises(SourceError, match="needs apache-airflow-providers-google"):
        login(hvac.Client(url=URL, session=FakeVault().session()), settings.auth)


def test_github_also_reads_token_path(tmp_path: Path) -> None:
    """The official client accepts token_path for github, then sends no token; this one reads the file."""
    path = tmp_path / "gh"
    path.write_text("ghp_from_file\n")
    calls, _ = our_calls({"auth_type": "github", "token_path": str(path)})
    assert (calls[0].path, calls[0].body) == ("/v1/auth/github/login", {"token": "ghp_from_file"})


def test_cert_login_presents_the_client_certificate_and_names_the_role(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("certificate")
    key.write_text("key")
    calls, lease = our_calls(
        {"url": "https://vault.test", "auth_type": "cert", "cert": [str(cert), str(key)], "cert_role": "airflow"}
    )
    assert (calls[0].path, calls[0].body, calls[0].cert) == (
        "/v1/auth/cert/login",
        {"name": "airflow"},
        (str(cert), str(key)),
    )
    assert lease == Lease(ttl=3600.0, renewable=True)


def test_login_reports_the_lease_and_a_static_token_none(tmp_path: Path) -> None:
    _, lease = our_calls({"auth_type": "userpass", "username": "u", "password": "p"})
    assert lease == Lease(ttl=3600.0, renewable=True)
    _, none = our_calls({"auth_type": "token", "token": "t0ken-value"})
    assert none is None


def test_an_unreadable_token_file_names_the_kwarg_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(SourceError, match=f"cannot read jwt_token_path {missing}"):
        our_calls({"auth_type": "jwt", "jwt_role": "r", "jwt_token_path": str(missing)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auth_type": "github"}, "auth_type 'github' requires 'token' or 'token_path'"),
        ({"auth_type": "kubernetes"}, "requires 'kubernetes_role'"),
        ({"auth_type": "jwt", "jwt_token": "x"}, "requires 'jwt_role'"),
        ({"auth_type": "jwt", "jwt_role": "r"}, "requires 'jwt_token' or 'jwt_token_path'"),
        ({"auth_type": "azure", "azure_tenant_id": "t"}, "requires 'azure_resource'"),
        ({"auth_type": "radius", "radius_host": "h"}, "requires 'radius_secret'"),
        ({"auth_type": "gcp", "role_id": "r"}, "requires 'gcp_scopes'"),
        ({"auth_type": "ldap"}, "requires 'username'"),
        ({"auth_type": "cert"}, "requires 'cert'"),
        ({"auth_type": "cert", "cert": ["c", "k"], "url": "http://v:8200"}, "requires an https:// url"),
        ({"auth_type": "cert", "cert": ["c"], "url": "https://v"}, "cert must be a path, or a list of two paths"),
        ({"auth_type": "approle", "role_id": 5}, "role_id must be a string"),
        ({"auth_type": "radius", "radius_host": "h", "radius_secret": "s", "radius_port": "1812"}, "radius_port"),
        ({"auth_type": "aws_iam", "assume_role_kwargs": "x"}, "assume_role_kwargs must be a JSON object"),
    ],
)
def test_each_auth_type_is_checked_like_vault_backend_and_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_vault_settings(kwargs)


def test_secret_values_of_every_auth_type_are_masked_and_kept_out_of_repr() -> None:
    settings = parse_vault_settings(
        {"auth_type": "radius", "radius_host": "h", "radius_secret": "radius-shared-secret"}
    )
    assert settings.auth.secret_values() == ("radius-shared-secret",)
    assert "radius-shared-secret" not in repr(settings)
    jwt = parse_vault_settings({"auth_type": "jwt", "jwt_role": "r", "jwt_token": "jwt-login-token-value"})
    assert jwt.auth.secret_values() == ("jwt-login-token-value",)
    gcp = parse_vault_settings(
        {"auth_type": "gcp", "role_id": "r", "gcp_scopes": "s", "gcp_keyfile_dict": {"private_key": "-----BEGIN K"}}
    )
    assert gcp.auth.secret_values() == ("-----BEGIN K",)
