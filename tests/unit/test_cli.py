"""The check command without peers: which settings it reads, how errors map to exit codes, what it prints."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kong_secrets_backend import cli
from kong_secrets_backend.backend import KongSecretsBackend
from kong_secrets_backend.cli import check
from kong_secrets_backend.cli.check import (
    EXIT_MISCONFIGURED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    BackendSettings,
    CheckReport,
    ProbeResult,
    TokenInfo,
    airflow_backend_settings,
    classify,
    run_check,
)
from kong_secrets_backend.errors import (
    AccessDenied,
    ConfigError,
    DeadlineExceeded,
    ErrorCategory,
    KongAuthError,
    SecretFormatError,
    SecretIdError,
    SourceError,
    TokenEndpointError,
)

PLANTED_SECRET_ID = "planted-secret-id-6f1d0c9e2b"
OURS = "kong_secrets_backend.KongSecretsBackend"


@pytest.fixture
def airflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Only what a test sets: both sections empty, no per-key overrides from the caller's shell."""
    import os

    from kong_secrets_backend.airflow_bridge.compat import _conf

    _conf()  # importing Airflow builds the backends configured *now*: do it before the test changes them
    for name in list(os.environ):
        if name.startswith(("AIRFLOW__WORKERS__SECRETS_BACKEND", "AIRFLOW__SECRETS__BACKEND")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", "")
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "")
    yield monkeypatch


def settings(**kwargs: object) -> BackendSettings:
    return BackendSettings(
        class_path=OURS,
        section="workers",
        option="secrets_backend",
        kwargs_option="secrets_backend_kwargs",
        kwargs=kwargs,
    )


# -- which settings ---------------------------------------------------------------------------------------


def test_workers_settings_win_over_secrets_settings(airflow_env: pytest.MonkeyPatch) -> None:
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", '{"url": "https://vault.workers:8200"}')
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND", "airflow.providers.hashicorp.secrets.vault.VaultBackend")
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", '{"url": "https://vault.everyone:8200"}')
    found = airflow_backend_settings()
    assert (found.class_path, found.origin, found.kwargs) == (
        OURS,
        "[workers] secrets_backend",
        {"url": "https://vault.workers:8200"},
    )


def test_secrets_settings_are_used_when_workers_has_none(airflow_env: pytest.MonkeyPatch) -> None:
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", '{"url": "https://ignored:8200"}')
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND", OURS)
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", '{"url": "https://vault:8200", "mount_point": "kv"}')
    found = airflow_backend_settings()
    assert found.origin == "[secrets] backend"
    assert found.kwargs == {"url": "https://vault:8200", "mount_point": "kv"}


def test_per_key_environment_overrides_apply_like_airflows(airflow_env: pytest.MonkeyPatch) -> None:
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", '{"url": "https://vault:8200", "role_id": "a"}')
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__SECRET_ID", PLANTED_SECRET_ID)
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__ROLE_ID", "b")
    found = airflow_backend_settings()
    assert found.kwargs == {"url": "https://vault:8200", "role_id": "b", "secret_id": PLANTED_SECRET_ID}
    assert found.overrides == ("role_id", "secret_id")
    assert PLANTED_SECRET_ID not in repr(found)


def test_kwargs_that_are_not_json_are_a_misconfiguration_airflow_would_hide(airflow_env: pytest.MonkeyPatch) -> None:
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND", OURS)
    airflow_env.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", '{"url": "https://vault:8200",\n "secret_id": oops}')
    report = run_check("kong_orders", airflow_backend_settings())
    assert report.exit_code == EXIT_MISCONFIGURED
    assert report.error is not None
    assert "[secrets] backend_kwargs is not valid JSON (line 2" in report.error["message"]
    assert "Airflow would ignore it" in report.error["message"]


# -- misconfigurations, before any request ---------------------------------------------------------------


def test_no_backend_configured_is_a_misconfiguration(airflow_env: pytest.MonkeyPatch) -> None:
    report = run_check("kong_orders", airflow_backend_settings())
    assert (report.exit_code, report.error) == (
        EXIT_MISCONFIGURED,
        {
            "reason": "bad_config",
            "message": "no secrets backend is configured: set [workers] secrets_backend or [secrets] backend",
        },
    )


def test_another_backend_class_is_named() -> None:
    other = settings()
    other.class_path = "airflow.providers.hashicorp.secrets.vault.VaultBackend"
    report = run_check("kong_orders", other)
    assert report.exit_code == EXIT_MISCONFIGURED
    assert (
        report.error is not None
        and "is airflow.providers.hashicorp.secrets.vault.VaultBackend, not" in (report.error["message"])
    )


def test_invalid_kwargs_are_named_and_no_value_is_shown() -> None:
    report = run_check(
        "kong_orders",
        settings(url="https://vault:8200", auth_type="approle", role_id="r", secret_id=PLANTED_SECRET_ID, dedline=3),
    )
    assert report.exit_code == EXIT_MISCONFIGURED
    assert report.error is not None and "unknown backend kwargs: dedline" in report.error["message"]
    assert PLANTED_SECRET_ID not in json.dumps(report.to_json()) + cli.render(report)


def test_cli_json_output_is_one_document_with_the_exit_code(
    airflow_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
    airflow_env.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", json.dumps({"secret_id": PLANTED_SECRET_ID, "x": 1}))
    code = cli.main(["check", "kong_orders", "--json"])
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert code == document["exit_code"] == EXIT_MISCONFIGURED
    assert document["status"] == "misconfigured" and document["ok"] is False
    assert PLANTED_SECRET_ID not in out + err


def test_cli_without_a_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 1
    assert "check" in capsys.readouterr().err


# -- exit codes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad"), EXIT_MISCONFIGURED),
        (SecretFormatError("kong_auth.client_id is missing"), EXIT_MISCONFIGURED),
        (SecretIdError("conn_id leaves the path"), EXIT_MISCONFIGURED),
        (AccessDenied("dag not allowed"), EXIT_REFUSED),
        (SourceError("login failed", reason="vault_login"), EXIT_REFUSED),
        (SourceError("403", reason="vault_forbidden"), EXIT_REFUSED),
        (SourceError("down", reason="vault_unreachable"), EXIT_UNREACHABLE),
        (SourceError("sealed", reason="vault_down"), EXIT_UNREACHABLE),
        (SourceError("500", reason="vault_error"), EXIT_UNREACHABLE),
        (SourceError("no such secret", reason="credentials_missing"), EXIT_MISCONFIGURED),
        (TokenEndpointError("401", reason="idp_invalid_client", status=401), EXIT_REFUSED),
        (TokenEndpointError("400", reason="idp_invalid_scope", status=400), EXIT_REFUSED),
        (TokenEndpointError("503", reason="idp_http_error", status=503), EXIT_UNREACHABLE),
        (TokenEndpointError("refused", reason="idp_unreachable"), EXIT_UNREACHABLE),
        (TokenEndpointError("302", reason="idp_redirect", status=302), EXIT_UNREACHABLE),
        (TokenEndpointError("html", reason="idp_garbage", status=200), EXIT_UNREACHABLE),
        (DeadlineExceeded("10s"), EXIT_UNREACHABLE),
        (KongAuthError("?", reason="internal"), EXIT_MISCONFIGURED),
    ],
)
def test_resolution_errors_map_to_exit_codes(error: KongAuthError, code: int) -> None:
    assert classify(error) == code


def test_every_error_category_has_an_exit_code() -> None:
    assert set(check.EXIT_CODES) == set(ErrorCategory)
    assert set(check.EXIT_CODES.values()) == {EXIT_MISCONFIGURED, EXIT_REFUSED, EXIT_UNREACHABLE}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TokenEndpointError("400", reason="idp_request_timeout", status=400), EXIT_REFUSED),
        (TokenEndpointError("400", reason="idp_unreachable", status=400), EXIT_REFUSED),
        (TokenEndpointError("503", reason="idp_access_denied", status=503), EXIT_UNREACHABLE),
        (TokenEndpointError("503", reason="idp_vault_forbidden", status=503), EXIT_UNREACHABLE),
    ],
)
def test_an_identity_providers_error_code_never_decides_the_exit_code(error: KongAuthError, code: int) -> None:
    assert classify(error) == code


class RefusedByVault(KongSecretsBackend):
    """A backend whose every lookup Vault refuses (what run_check sees from a real one)."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        raise SourceError(f"Vault denied reading kv/connections/{conn_id}", reason="vault_forbidden")

    resolve = get_conn_value  # what check calls: the lookup with its findings


def test_the_report_keeps_the_detailed_reason_and_adds_the_category() -> None:
    refused = settings(url="https://vault:8200", auth_type="approle", role_id="r", secret_id=PLANTED_SECRET_ID)
    refused.class_path = f"{__name__}.RefusedByVault"
    report = run_check("kong_orders", refused)
    assert (report.exit_code, report.error) == (
        EXIT_REFUSED,
        {
            "reason": "vault_forbidden",
            "message": "Vault denied reading kv/connections/kong_orders",
            "category": "source_refused",
        },
    )
    document = report.to_json()
    assert document["status"] == "refused" and document["error"]["category"] == "source_refused"


@pytest.mark.parametrize(
    ("status", "code"),
    [(200, EXIT_OK), (204, EXIT_OK), (302, EXIT_OK), (429, EXIT_OK), (401, EXIT_REFUSED), (403, EXIT_REFUSED),
     (404, EXIT_MISCONFIGURED), (405, EXIT_MISCONFIGURED), (500, EXIT_UNREACHABLE), (503, EXIT_UNREACHABLE),
     (None, EXIT_UNREACHABLE)],
)  # fmt: skip
def test_probe_statuses_map_to_exit_codes(status: int | None, code: int) -> None:
    assert check._probe_exit_code(ProbeResult(method="GET", url="u", status=status)) == code


# -- probe URL and output ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "endpoint", "url"),
    [
        ({"host": "kong.example.com", "schema": "https"}, "/orders", "https://kong.example.com/orders"),
        (
            {"host": "kong.example.com", "port": 8443, "schema": "https"},
            "orders",
            "https://kong.example.com:8443/orders",
        ),
        ({"host": "127.0.0.1", "port": 8000}, None, "http://127.0.0.1:8000"),
        ({"host": "https://kong.example.com/api"}, "/orders", "https://kong.example.com/api/orders"),
    ],
)
def test_probe_url_is_built_like_http_hooks(data: dict, endpoint: str | None, url: str) -> None:
    assert check._url(check._base_url(data), endpoint) == url


def test_userinfo_in_a_probe_url_is_not_shown() -> None:
    assert check._redact_userinfo("https://user:pw@kong.example.com/x") == "https://***@kong.example.com/x"


CLAIMS = {"sub": "airflow-orders", "aud": ["a", "b"], "scope": "orders:read", "exp": 1, "kid": "k1"}


def test_the_human_report_shows_claims_cache_and_probe_but_no_token() -> None:
    report = CheckReport(
        conn_id="kong_orders",
        backend={"class": OURS, "from": "[workers] secrets_backend", "kwargs_from": "[workers] secrets_backend_kwargs",
                 "source": "vault", "vault_url": "https://vault:8200", "vault_auth_type": "approle"},
        secret_path="secret/connections/kong_orders",
        secret_version="7",
        flow="client_credentials",
        header="Authorization",
        token=TokenInfo(claims=CLAIMS, expires_at="2030-01-01T00:00:00Z", expires_in=299.6, obtained="minted",
                        refresh_in=239.6),
        cache={"mode": "memory", "shared_by": "this process only", "state": "minted by this command"},
        probe=ProbeResult(method="GET", url="https://kong/orders", status=200, reason="OK",
                          rate_limit={"RateLimit-Remaining": "99"}, headers={"Via": "kong/3.9"}),
    )  # fmt: skip
    text = cli.render(report)
    assert text.splitlines()[0] == "kong-secrets-backend check kong_orders: ok (exit 0)"
    assert "secret/connections/kong_orders  (version 7)" in text
    assert "sub=airflow-orders  aud=a,b  scope=orders:read  exp=1  kid=k1" in text
    assert "memory (this process only): minted by this command; refresh due in 240s" in text
    assert "GET https://kong/orders -> 200 OK" in text and "RateLimit-Remaining: 99" in text


def test_airflow_failing_to_load_its_configuration_is_a_misconfiguration_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> BackendSettings:
        raise RuntimeError(f"VaultBackend could not log in with {PLANTED_SECRET_ID}")

    monkeypatch.setattr(check, "airflow_backend_settings", broken)
    assert cli.main(["check", "kong_orders"]) == EXIT_MISCONFIGURED
    out, err = capsys.readouterr()
    assert "Airflow could not load its configuration (RuntimeError)" in out
    assert PLANTED_SECRET_ID not in out + err and "Traceback" not in out + err
