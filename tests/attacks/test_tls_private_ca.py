"""An identity provider behind TLS with a private CA: verified with ``ca_bundle`` or the standard CA environment
variables, refused without (never a reason to reach for ``allow_insecure_http``). Through the real stack: the
connection secret in OpenBao, the IdP a TLS listener on loopback with a certificate of a throwaway CA.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.pki import CertificateAuthority
from devstack.stack import Stack
from kong_secrets_backend import KongSecretsBackend
from kong_secrets_backend.errors import ConfigError, TokenEndpointError
from kong_secrets_backend.resolver import Resolution
from tests.attacks.answering_idp import AnsweringIdp, answering_idp

pytestmark = pytest.mark.usefixtures("fresh_process_state")


@pytest.fixture(autouse=True)
def no_ambient_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("private-ca"), name="private")


@pytest.fixture(scope="module")
def tls_idp(private_ca: CertificateAuthority) -> Iterator[AnsweringIdp]:
    with answering_idp(cert=private_ca.issue("idp", server=True).pair()) as running:
        yield running


def kong_conn(stack: Stack, idp: AnsweringIdp, *, discovery: bool = False) -> str:
    conn_id = f"tls_{uuid.uuid4().hex[:10]}"
    where = {"issuer": idp.base, "token_url": None} if discovery else {"token_url": idp.token_url("ok")}
    stack.put(f"connections/{conn_id}", stack.kong_connection(**where))
    return conn_id


def minted(backend: KongSecretsBackend, conn_id: str) -> Resolution:
    found = backend.resolve(conn_id)
    assert isinstance(found, Resolution)
    assert found.token.value == "answering-idp-token-value"
    return found


def test_without_the_ca_the_private_idp_is_refused(stack: Stack, tls_idp: AnsweringIdp) -> None:
    posts = len(tls_idp.posts)
    with pytest.raises(TokenEndpointError, match="SSLError") as refused:
        KongSecretsBackend(**stack.backend_kwargs()).resolve(kong_conn(stack, tls_idp))
    assert refused.value.reason == "idp_unreachable"
    assert len(tls_idp.posts) == posts  # the client secret never left: the handshake failed first


@pytest.mark.parametrize("discovery", [False, True], ids=["token_url", "issuer"])
def test_ca_bundle_verifies_the_token_endpoint_and_discovery(
    stack: Stack, tls_idp: AnsweringIdp, private_ca: CertificateAuthority, discovery: bool
) -> None:
    backend = KongSecretsBackend(**stack.backend_kwargs(ca_bundle=str(private_ca.cert_path)))
    minted(backend, kong_conn(stack, tls_idp, discovery=discovery))


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_standard_ca_variables_are_honoured(
    stack: Stack,
    tls_idp: AnsweringIdp,
    private_ca: CertificateAuthority,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, str(private_ca.cert_path))
    minted(KongSecretsBackend(**stack.backend_kwargs()), kong_conn(stack, tls_idp, discovery=True))


def test_ca_bundle_wins_over_the_environment(
    stack: Stack,
    tls_idp: AnsweringIdp,
    private_ca: CertificateAuthority,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.cert_path))
    other = CertificateAuthority(tmp_path / "other", name="other")
    backend = KongSecretsBackend(**stack.backend_kwargs(ca_bundle=str(other.cert_path)))
    with pytest.raises(TokenEndpointError, match="SSLError"):
        backend.resolve(kong_conn(stack, tls_idp))


def test_a_certificate_for_another_host_is_refused_even_with_the_right_ca(
    stack: Stack, private_ca: CertificateAuthority
) -> None:
    # the certificate names localhost and 127.0.0.1; the endpoint listens on, and is reached as, 127.0.0.2
    with answering_idp(cert=private_ca.issue("idp-b", server=True).pair(), host="127.0.0.2") as idp:
        conn_id = f"tls_{uuid.uuid4().hex[:10]}"
        stack.put(f"connections/{conn_id}", stack.kong_connection(token_url=idp.token_url("ok")))
        backend = KongSecretsBackend(**stack.backend_kwargs(ca_bundle=str(private_ca.cert_path)))
        with pytest.raises(TokenEndpointError, match="SSLError"):
            backend.resolve(conn_id)


def test_a_missing_ca_bundle_is_a_configuration_error_naming_it(stack: Stack, tls_idp: AnsweringIdp) -> None:
    backend = KongSecretsBackend(**stack.backend_kwargs(ca_bundle="/nonexistent/private-ca.pem"))
    with pytest.raises(ConfigError, match=r"ca_bundle /nonexistent/private-ca\.pem is not a readable file"):
        backend.resolve(kong_conn(stack, tls_idp))


def test_a_missing_environment_bundle_is_a_configuration_error_naming_the_variable(
    stack: Stack, tls_idp: AnsweringIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/env-ca.pem")
    with pytest.raises(ConfigError, match=r"REQUESTS_CA_BUNDLE /nonexistent/env-ca\.pem does not exist"):
        KongSecretsBackend(**stack.backend_kwargs()).resolve(kong_conn(stack, tls_idp))


@pytest.mark.parametrize(("value", "message"), [("relative/ca.pem", "absolute path"), (42, "non-empty string")])
def test_ca_bundle_is_checked_by_name_when_the_backend_is_built(value: object, message: str) -> None:
    from tests.backend_settings import backend_settings

    with pytest.raises(ConfigError, match=f"ca_bundle must be .*{message}"):
        backend_settings(ca_bundle=value)
