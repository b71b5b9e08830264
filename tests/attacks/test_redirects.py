"""Attack: a gateway route answers 302 to another origin. The credential must never reach that origin.

requests and aiohttp drop only ``Authorization`` when a redirect leaves the origin; every other header (key_auth's
``apikey``, a token under a custom ``header_name``) is re-sent to whatever host the ``Location`` names. The backend
therefore returns such connections with ``"allow_redirects": false`` (a request option for HttpHook and
HttpAsyncHook alike), unless the secret's own extra sets ``allow_redirects``.

The rig: a second HAProxy gateway (devstack/gateway.py) whose routes authenticate like Kong and then redirect, with
Kong's redirect plugin, to a listener on another port that records every header it receives. It is driven by
unchanged HttpOperators (sync and ``deferrable=True``) in one ``airflow dags test``, and by ``check --probe``.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.airflow import dags_test, prepare_airflow
from devstack.gateway import Gateway, JwtRoute, KeyAuthRoute, Listener, Redirect, start_gateway, start_listener
from devstack.stack import ORDERS_AUDIENCE, ORDERS_SCOPE, Stack
from kong_secrets_backend import cli
from kong_secrets_backend.connection import kong_conn_value
from tests.conftest import assert_no_secrets
from tests.e2e.dag_runs import LEAK_SCAN_LOGGING
from tests.leak_scan import LEAKS

DAGS = Path(__file__).resolve().parent / "dags"
CUSTOM_HEADER = "X-API-Key"
OURS = "kong_secrets_backend.KongSecretsBackend"


# -- what the backend returns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header_name", ["apikey", "X-API-Key", "X-Kong-Token", "Proxy-Authorization"])
def test_a_header_other_than_authorization_comes_back_with_allow_redirects_false(header_name: str) -> None:
    out = json.loads(kong_conn_value({"host": "kong", "extra": {"Accept": "x"}}, **_header(header_name)))
    assert out["extra"] == {"Accept": "x", "allow_redirects": False, header_name: "v"}


@pytest.mark.parametrize("header_name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_authorization_is_left_to_the_client_which_drops_it_on_another_origin(header_name: str) -> None:
    out = json.loads(kong_conn_value({"host": "kong"}, **_header(header_name)))
    assert "allow_redirects" not in out["extra"]


@pytest.mark.parametrize("own", [True, False, "yes"])
def test_the_secrets_own_allow_redirects_wins(own: Any) -> None:
    for extra in ({"allow_redirects": own}, json.dumps({"allow_redirects": own})):
        out = json.loads(kong_conn_value({"host": "kong", "extra": extra}, **_header("apikey")))
        assert out["extra"]["allow_redirects"] == own


def test_both_http_hooks_read_allow_redirects_as_a_request_option_not_a_header() -> None:
    """HttpHook (requests) and HttpAsyncHook (aiohttp) share one reading of the extras: options are popped, every
    other key becomes a header. allow_redirects must be an option there, and reach both request calls."""
    import inspect

    from airflow.models import Connection
    from airflow.providers.http.hooks import http

    conn = Connection.from_json(
        kong_conn_value({"conn_type": "http", "host": "kong", "extra": {"Accept": "x"}}, **_header("apikey")),
        conn_id="c",
    )
    headers, options = http._process_extra_options_from_connection(conn, {})
    assert headers == {"Accept": "x", "apikey": "v"}
    assert options == {"allow_redirects": False}
    # HttpAsyncHook reads the extras through the same function, and passes allow_redirects on to aiohttp (the
    # options it drops are listed); that both clients then stop at the 302 is the e2e test below.
    assert "_process_extra_options_from_connection" in inspect.getsource(http.HttpAsyncHook.config)
    assert "allow_redirects" not in http._AIOHTTP_UNSUPPORTED_EXTRA_OPTIONS


def _header(name: str) -> dict[str, Any]:
    return {"header_name": name, "header_value": "v", "conn_id": "c"}


# -- the rig: a gateway whose routes redirect to another origin -----------------------------------------------------


@dataclass
class Rig:
    gateway: Gateway
    other_origin: Listener
    key: str  # the key_auth key the redirecting routes accept

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.gateway.url.removeprefix("http://").split(":")
        return host, int(port)

    def connection(self, kong_auth: dict[str, Any], **fields: Any) -> dict[str, Any]:
        host, port = self.host_port
        return {"conn_type": "http", "host": host, "port": port, "schema": "http", **fields, "kong_auth": kong_auth}

    def key_auth(self, **overrides: Any) -> dict[str, Any]:
        return {"flow": "key_auth", "key": self.key, **overrides}


@pytest.fixture(scope="module")
def rig(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("redirects")
    key = f"kak-redirect-{secrets.token_hex(16)}"
    LEAKS.plant(key)
    other = start_listener(workdir / "other-origin", "other-origin")
    moved = Redirect(other.url, status_code=302, keep_incoming_path=True)
    try:
        gateway = start_gateway(
            workdir / "gateway",
            [
                KeyAuthRoute("/moved", {key: "redirect-consumer"}, key_names=("apikey", CUSTOM_HEADER), redirect=moved),
                JwtRoute(
                    "/orders-moved",
                    stack.idp.public_key_pem_path,
                    stack.idp.issuer,
                    ORDERS_AUDIENCE,
                    ORDERS_SCOPE,
                    redirect=moved,
                ),
            ],
        )
    except BaseException:
        other.stop()
        raise
    try:
        yield Rig(gateway=gateway, other_origin=other, key=key)
    finally:
        gateway.stop()
        other.stop()


def _put_attack_connections(stack: Stack, rig: Rig) -> None:
    stack.put("connections/attack_redirect_key", rig.connection(rig.key_auth()))
    stack.put("connections/attack_redirect_custom", rig.connection(rig.key_auth(header_name=CUSTOM_HEADER)))
    stack.put("connections/attack_redirect_bearer", rig.connection(stack.kong_auth()))
    stack.put(
        "connections/attack_redirect_optin",
        rig.connection(rig.key_auth(), extra={"allow_redirects": True}),
    )
    stack.put(
        "connections/attack_no_schema",
        {"conn_type": "http", "host": "kong.example.com", "kong_auth": rig.key_auth()},
    )


def _credentials_seen(requests: list[dict[str, Any]], key: str) -> list[str]:
    """Where a request carried the key or any Authorization header (by path; never the value)."""
    return [
        r["path"]
        for r in requests
        if "authorization" in r["headers"] or any(key in str(v) for v in r["headers"].values())
    ]


# -- the attack, through airflow dags test --------------------------------------------------------------------------


@pytest.mark.e2e
def test_unchanged_http_operators_sync_and_deferrable_never_carry_the_credential_to_another_origin(
    stack: Stack, rig: Rig, tmp_path: Path
) -> None:
    _put_attack_connections(stack, rig)
    seen_before = len(rig.other_origin.received())
    af = prepare_airflow(
        tmp_path,
        backend=OURS,
        backend_kwargs=stack.backend_kwargs(),
        dags_folder=DAGS,
        extra_env=LEAK_SCAN_LOGGING,
    )
    result = dags_test(af, "redirect_attack")
    print(f"\nairflow dags test redirect_attack: {result.duration:.1f}s")
    output = result.all_output
    # The gateway authenticated every request and answered 302 (its own upstream saw none of them).
    assert rig.gateway.received() == []
    arrived = rig.other_origin.received()[seen_before:]
    by_path = {r["path"]: r for r in arrived}

    # key_auth's apikey and a custom header: the redirect was not followed at all, sync or deferred.
    for case in ("key", "custom"):
        assert f"/moved/sync-{case}" not in by_path and f"/moved/deferred-{case}" not in by_path
    # Authorization: followed (the operators' default), and both clients dropped the bearer token on the way.
    for path in ("/orders-moved/sync-bearer", "/orders-moved/deferred-bearer"):
        assert path in by_path, (sorted(by_path), output[-3000:])
        assert "authorization" not in by_path[path]["headers"]
    # The control: a secret that opts in with allow_redirects: true is followed, and both clients re-send the key
    # to the other origin. This is the leak every other case is protected from.
    for path in ("/moved/sync-optin", "/moved/deferred-optin"):
        assert path in by_path, sorted(by_path)
        assert by_path[path]["headers"].get("apikey") == rig.key
    leaked_to = sorted(_credentials_seen(arrived, rig.key))
    assert leaked_to == ["/moved/deferred-optin", "/moved/sync-optin"], f"a credential went to: {leaked_to}"

    states = result.task_states
    # Every task that did not follow the redirect, and every sync task, succeeded: a 302 is not an error.
    followed_deferred = {"deferred_bearer", "deferred_optin"}
    assert {t: s for t, s in states.items() if t not in followed_deferred} == dict.fromkeys(
        set(states) - followed_deferred, "success"
    ), output[-6000:]
    assert len(states) == 9, states
    # A deferrable HttpOperator that follows a redirect fails after the fact in the HTTP provider (6.3.0): its
    # trigger reads the body of the redirect response, which aiohttp has already released ("Connection closed").
    # The request itself did go to the other origin, which is what this test examines.
    for task_id in followed_deferred:
        assert states[task_id] == "success" or "Unexpected error in the operation: Connection closed" in output

    # A Kong connection stored without schema: the hook's URL is https.
    assert "HOOK_URL=https://kong.example.com/orders" in output
    tokens = [*_bearer_tokens(stack.gateway.received()), *_bearer_tokens(arrived)]
    assert_no_secrets(output, [*stack.planted_secrets(), rig.key, *tokens])


def _bearer_tokens(requests: list[dict[str, Any]]) -> list[str]:
    auth = (r["headers"].get("authorization", "") for r in requests)
    return [a.removeprefix("Bearer ").strip() for a in auth if a]


# -- check --probe behaves like the task ----------------------------------------------------------------------------


@pytest.fixture
def check(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_process_state: None
) -> Iterator[Any]:
    """`kong-secrets-backend check ARGS...` in-process with [workers] settings for the stack."""
    from kong_secrets_backend.airflow_bridge.compat import _conf

    _conf()
    for name in list(os.environ):
        if name.startswith(("AIRFLOW__WORKERS__SECRETS_BACKEND", "AIRFLOW__SECRETS__BACKEND")):
            monkeypatch.delenv(name)

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", OURS)
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", json.dumps(stack.backend_kwargs()))
        code = cli.main(["check", *args, "--json"])
        out, err = capsys.readouterr()
        assert not err, err
        LEAKS.record("check --probe", out)
        return code, json.loads(out)

    yield run


def test_check_probe_does_not_follow_a_redirect_that_the_task_would_not_follow(
    stack: Stack, rig: Rig, check: Any
) -> None:
    cid = f"attack_probe_{uuid.uuid4().hex[:8]}"
    stack.put(f"connections/{cid}", rig.connection(rig.key_auth()))
    seen_before = len(rig.other_origin.received())
    code, report = check(cid, "--probe", "--endpoint", "/moved/probe")
    assert code == 0, report
    assert report["probe"]["status"] == 302 and report["probe"]["redirected_to"] is None
    assert {k.lower(): v for k, v in report["probe"]["headers"].items()}["location"].startswith(rig.other_origin.url)
    assert rig.other_origin.received()[seen_before:] == []
    assert_no_secrets(json.dumps(report), [rig.key])


@pytest.mark.parametrize("case", ["optin", "bearer"])
def test_check_probe_follows_a_redirect_like_the_task_but_never_with_the_credential(
    stack: Stack, rig: Rig, check: Any, case: str
) -> None:
    """Where the task follows the redirect, so does the probe (it reports what answered), but the other origin gets
    neither the key (which the task, opted in, would send) nor the bearer token."""
    cid = f"attack_probe_{uuid.uuid4().hex[:8]}"
    if case == "optin":
        secret, endpoint = rig.connection(rig.key_auth(), extra={"allow_redirects": True}), "/moved/probe-optin"
    else:
        secret, endpoint = rig.connection(stack.kong_auth()), "/orders-moved/probe-bearer"
    stack.put(f"connections/{cid}", secret)
    seen_before = len(rig.other_origin.received())
    code, report = check(cid, "--probe", "--endpoint", endpoint)
    assert code == 0, report
    assert report["probe"]["status"] == 200
    assert report["probe"]["redirected_to"] == f"{rig.other_origin.url}{endpoint}"
    arrived = rig.other_origin.received()[seen_before:]
    assert [r["path"] for r in arrived] == [endpoint]
    assert _credentials_seen(arrived, rig.key) == []
    assert_no_secrets(json.dumps(report), [rig.key, *_bearer_tokens(stack.gateway.received())])
