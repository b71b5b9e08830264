"""Vault login, one function per auth type: each makes the hvac call Airflow's VaultBackend makes.

The mapping follows ``airflow/providers/hashicorp/_internal_client/vault_client.py`` one to one, with
the same kwargs and mounts, so a switch from VaultBackend logs in exactly as before. Differences:
``github`` also reads ``token_path`` (the official client checks for it, then ignores it), and ``cert``
(TLS client certificate) is this project's own addition. ``azure`` and ``radius`` call hvac's
``configure`` as the official client does: that is an administrative call, not a login, so those two
only work with a token already in the environment (``VAULT_TOKEN``), exactly as with VaultBackend.

``login`` returns the lease of the token it obtained (TTL and renewability) when the answer tells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import SourceError

if TYPE_CHECKING:
    import hvac

    from kong_secrets_backend.sources.vault_settings import VaultAuth


@dataclass(frozen=True)
class Lease:
    """A Vault token's lease as Vault reported it: seconds to live (0: never expires) and renewability."""

    ttl: float
    renewable: bool


def login(client: hvac.Client, auth: VaultAuth) -> Lease | None:
    """Authenticate `client` with `auth`; the token is set on the client. Raises hvac/OS errors as they come."""
    response = _LOGINS[auth.type](client, auth.params, _mount(auth))
    return lease_of(response)


def lease_of(response: Any) -> Lease | None:
    """The lease in a login or renew answer (``auth.lease_duration``, ``auth.renewable``), if it has one."""
    block = response.get("auth") if isinstance(response, Mapping) else None
    if not isinstance(block, Mapping):
        return None
    duration = block.get("lease_duration")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        return None
    return Lease(ttl=float(duration), renewable=bool(block.get("renewable")))


def lease_of_lookup(response: Any) -> Lease | None:
    """The lease in a ``lookup-self`` answer (``data.ttl``, ``data.renewable``)."""
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    ttl = data.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        return None
    return Lease(ttl=float(ttl), renewable=bool(data.get("renewable")))


def read_secret_file(path: str, what: str) -> str:
    """A token or JWT kept in a file (``token_path``, ``jwt_token_path``, ``kubernetes_jwt_path``), stripped."""
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as exc:
        raise SourceError(f"cannot read {what} {path}: {exc.strerror}", reason="bad_config") from exc
    mask(value)
    return value


def _mount(auth: VaultAuth) -> dict[str, str]:
    return {"mount_point": auth.mount_point} if auth.mount_point else {}


# -- one function per auth type ----------------------------------------------------------------------


def _token(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> None:
    if params.get("token_path"):
        client.token = read_secret_file(params["token_path"], "token_path")
    else:
        client.token = params["token"]


def _approle(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    return client.auth.approle.login(role_id=params["role_id"], secret_id=params.get("secret_id"), **mount)


def _userpass(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    return client.auth.userpass.login(username=params["username"], password=params.get("password"), **mount)


def _ldap(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    return client.auth.ldap.login(username=params["username"], password=params.get("password"), **mount)


def _jwt(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    if params.get("jwt_token"):
        jwt = str(params["jwt_token"]).strip()
    else:
        jwt = read_secret_file(params["jwt_token_path"], "jwt_token_path")
    path = {"path": mount["mount_point"]} if mount else {}  # hvac names the jwt mount `path`
    return client.auth.jwt.jwt_login(role=params["jwt_role"], jwt=jwt, **path)


def _kubernetes(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    from hvac.api.auth_methods import Kubernetes

    jwt = read_secret_file(params["kubernetes_jwt_path"], "kubernetes_jwt_path")
    return Kubernetes(client.adapter).login(role=params["kubernetes_role"], jwt=jwt, **mount)


def _github(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    token = params.get("token") or read_secret_file(params["token_path"], "token_path")
    return client.auth.github.login(token=token, **mount)


def _aws_iam(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    auth_args: dict[str, Any]
    if params.get("key_id") and params.get("secret_id"):
        auth_args = {"access_key": params["key_id"], "secret_key": params["secret_id"]}
    else:
        import boto3  # only this auth type, and only without key_id/secret_id, needs boto3

        if params.get("assume_role_kwargs"):
            sts_client = boto3.client("sts")
            credentials = sts_client.assume_role(**params["assume_role_kwargs"])
            auth_args = {
                "access_key": credentials["Credentials"]["AccessKeyId"],
                "secret_key": credentials["Credentials"]["SecretAccessKey"],
                "session_token": credentials["Credentials"]["SessionToken"],
                "region": sts_client.meta.region_name,
            }
        else:
            session = boto3.Session()
            found = session.get_credentials()
            if found is None:
                raise SourceError(
                    "auth_type 'aws_iam' found no AWS credentials in the boto3 chain", reason="bad_config"
                )
            auth_args = {
                "access_key": found.access_key,
                "secret_key": found.secret_key,
                "session_token": found.token,
                "region": session.region_name,
            }
        mask(auth_args["secret_key"], auth_args.get("session_token"))
    auth_args.update(mount)
    if params.get("region"):
        auth_args["region"] = params["region"]
    if params.get("role_id"):
        auth_args["role"] = params["role_id"]
    return client.auth.aws.iam_login(**auth_args)


def _azure(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    return client.auth.azure.configure(
        tenant_id=params["azure_tenant_id"],
        resource=params["azure_resource"],
        client_id=params.get("key_id"),
        client_secret=params.get("secret_id"),
        **mount,
    )


def _radius(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    return client.auth.radius.configure(
        host=params["radius_host"], secret=params["radius_secret"], port=params.get("radius_port"), **mount
    )


def _gcp(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    """As the official client: a JWT signed by the service account through the IAM API, then ``auth/gcp/login``."""
    import json
    import time

    try:
        import googleapiclient.discovery
        from airflow.providers.google.cloud.utils.credentials_provider import (
            _get_scopes,
            get_credentials_and_project_id,
        )
    except ImportError as exc:
        raise SourceError(
            "auth_type 'gcp' needs apache-airflow-providers-google (as with VaultBackend)", reason="bad_config"
        ) from exc

    credentials, project_id = get_credentials_and_project_id(
        key_path=params.get("gcp_key_path"),
        keyfile_dict=params.get("gcp_keyfile_dict"),
        scopes=_get_scopes(params["gcp_scopes"]),
    )
    email = getattr(credentials, "service_account_email", None)
    if email in (None, "default"):
        email = getattr(credentials, "client_email", None) or None
    if email is None:  # Compute Engine credentials learn their email on the first refresh
        try:
            from google.auth import compute_engine, transport

            if isinstance(credentials, compute_engine.Credentials):
                credentials.refresh(transport.requests.Request())
                email = getattr(credentials, "service_account_email", None)
        except Exception as exc:
            raise SourceError(
                f"auth_type 'gcp': cannot refresh Compute Engine credentials: {type(exc).__name__}",
                reason="vault_login",
            ) from None
    if not isinstance(email, str) or email == "default":
        raise SourceError("auth_type 'gcp': no service account email in the Google credentials", reason="bad_config")
    role = params["role_id"]
    now = int(time.time())
    payload = {"iat": now, "exp": now + 900, "sub": email, "aud": f"vault/{role}"}
    iam = googleapiclient.discovery.build("iam", "v1", credentials=credentials)
    request = (
        iam.projects()
        .serviceAccounts()
        .signJwt(name=f"projects/{project_id}/serviceAccounts/{email}", body={"payload": json.dumps(payload)})
    )
    jwt = request.execute()["signedJwt"]
    mask(jwt)
    return client.auth.gcp.login(role=role, jwt=jwt, **mount)


def _cert(client: hvac.Client, params: Mapping[str, Any], mount: dict[str, str]) -> Any:
    """Vault's TLS certificate auth: the client certificate (the ``cert`` kwarg) is presented in the handshake."""
    cert = params["cert"]
    cert_pem, key_pem = (cert, cert) if isinstance(cert, str) else cert
    return client.auth.cert.login(name=params.get("cert_role") or "", cert_pem=cert_pem, key_pem=key_pem, **mount)


_LOGINS: dict[str, Callable[[hvac.Client, Mapping[str, Any], dict[str, str]], Any]] = {
    "token": _token,
    "approle": _approle,
    "userpass": _userpass,
    "ldap": _ldap,
    "jwt": _jwt,
    "kubernetes": _kubernetes,
    "github": _github,
    "aws_iam": _aws_iam,
    "azure": _azure,
    "radius": _radius,
    "gcp": _gcp,
    "cert": _cert,
}
