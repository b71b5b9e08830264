"""A Vault HTTP API stand-in at the requests boundary: hvac runs for real, the transport records and answers.

Used by the unit tests of the Vault login mapping and the token lifecycle. Every request is recorded as
(method, path, JSON body, token header); answers are canned by path and can be scripted per test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter

URL = "http://vault.test:8200"


@dataclass
class Call:
    method: str
    path: str
    body: Any
    token: str | None
    cert: Any = None  # the TLS client certificate the request was sent with


@dataclass
class FakeVault(BaseAdapter):
    """Mount on a requests.Session; answers every Vault path this project uses."""

    lease_duration: int = 3600
    renewable: bool = True
    calls: list[Call] = field(default_factory=list)
    # path -> (status, body) overrides, or a callable returning them
    answers: dict[str, Callable[[Call], tuple[int, Any]]] = field(default_factory=dict)
    _tokens: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        super().__init__()

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("http://", self)
        session.mount("https://", self)
        return session

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        path = request.path_url.split("?")[0]
        body = json.loads(request.body) if request.body else None
        call = Call(str(request.method), path, body, request.headers.get("X-Vault-Token"), kwargs.get("cert"))
        self.calls.append(call)
        status, payload = self._answer(call)
        response = requests.Response()
        response.status_code = status
        response._content = b"" if payload is None else json.dumps(payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def _answer(self, call: Call) -> tuple[int, Any]:
        if call.path in self.answers:
            return self.answers[call.path](call)
        if call.path.endswith("/login") or "/login/" in call.path:
            return 200, self.auth_block(f"tok-{next(self._tokens)}")
        if call.path == "/v1/auth/token/renew-self":
            return 200, self.auth_block(call.token or "")
        if call.path == "/v1/auth/token/lookup-self":
            return 200, {"data": {"ttl": self.lease_duration, "renewable": self.renewable}}
        if call.path == "/v1/auth/token/revoke-self":
            return 204, None
        if call.path.startswith("/v1/secret/data/"):
            return 200, {"data": {"data": {"value": "v"}, "metadata": {"version": 1}}}
        return 204, None  # configure calls and the like

    def auth_block(self, token: str) -> dict[str, Any]:
        return {"auth": {"client_token": token, "lease_duration": self.lease_duration, "renewable": self.renewable}}

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def close(self) -> None:
        pass
