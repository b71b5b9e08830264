"""A bounded HTTP client for token endpoints: no redirects, a size cap, and the resolution deadline.

Token endpoint responses are untrusted input: a peer that redirects, answers 10 MB or drips one byte
a second must not leak a credential, exhaust memory or hang the task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kong_secrets_backend.errors import ConfigError, DeadlineExceeded, KongAuthError, TokenEndpointError
from kong_secrets_backend.transport.guard import SocketGuard, guarded_adapter

if TYPE_CHECKING:
    import requests

    from kong_secrets_backend.transport.deadline import Deadline

MAX_RESPONSE_BYTES = 1024 * 1024
CONNECT_TIMEOUT = 5.0
USER_AGENT = "kong-secrets-backend"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


class HttpTransport:
    """One requests.Session per process (re-created after fork), TLS verification always on.

    ``verify``: True, or the path of a PEM CA bundle (the ``ca_bundle`` setting). With True the CAs are those of
    ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, else certifi's, as requests chooses them; the session itself
    ignores the environment otherwise (no proxies, no netrc).
    """

    def __init__(self, *, verify: bool | str = True, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.verify = verify
        self._bundle_checked = False
        self.max_bytes = max_bytes
        self._session: requests.Session | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child (runtime.py's at-fork hook): a new lock and, on first use, a new session."""
        self._lock = threading.Lock()
        self._session = None

    def _get_session(self) -> requests.Session:
        if self._session is None or self._pid != os.getpid():
            with self._lock:
                if self._session is None or self._pid != os.getpid():
                    import requests

                    session = requests.Session()
                    session.trust_env = False  # no netrc credentials, no env proxies slipped in
                    session.headers["User-Agent"] = USER_AGENT
                    session.headers["Accept-Encoding"] = "identity"  # the size cap applies to what we read
                    adapter = guarded_adapter()  # the deadline covers connect, TLS, status line, headers, body
                    session.mount("http://", adapter)
                    session.mount("https://", adapter)
                    self._session, self._pid = session, os.getpid()
        return self._session

    def post_form(self, url: str, *, headers: Mapping[str, str], body: str, deadline: Deadline) -> HttpResponse:
        """POST a form to a token endpoint: no redirects followed, size cap, deadline."""
        data = body.encode()
        return self._send("POST", url, headers=dict(headers), data=data, deadline=deadline, what="token endpoint")

    def get(self, url: str, *, deadline: Deadline, what: str = "discovery endpoint") -> HttpResponse:
        """A bounded GET with the same rules as post_form; no credentials sent."""
        return self._send("GET", url, headers={"Accept": "application/json"}, data=None, deadline=deadline, what=what)

    def _send(
        self, method: str, url: str, *, headers: dict[str, str], data: bytes | None, deadline: Deadline, what: str
    ) -> HttpResponse:
        """One request, bounded as a whole by the deadline: a SocketGuard shuts the connection down when it
        passes, whether the peer stalls the connect, the TLS handshake, the status line, the headers or the body."""
        import requests

        session = self._get_session()
        read_timeout = deadline.timeout(what=f"the {what} request")
        with SocketGuard(deadline) as guard:
            try:
                resp = session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout),
                    allow_redirects=False,
                    stream=True,
                    verify=self._verify(),
                )
            except requests.Timeout as exc:
                raise DeadlineExceeded(f"{what} did not answer within {read_timeout:.1f}s") from exc
            except requests.RequestException as exc:
                if guard.expired:
                    raise DeadlineExceeded(
                        f"{what} did not answer within the deadline of {deadline.seconds:g}s"
                    ) from exc
                raise TokenEndpointError(f"{what} unreachable: {type(exc).__name__}", reason="idp_unreachable") from exc
            with resp:
                return HttpResponse(resp.status_code, dict(resp.headers), self._read_capped(resp, guard, what=what))

    def _verify(self) -> bool | str:
        """What verifies the peer: the configured CA bundle, else the environment's (as requests reads it), else
        True (certifi). A configured bundle that is not a file is a configuration error, found on first use."""
        verify = self.verify
        if verify is True:
            for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                path = os.environ.get(variable)
                if path:  # requests would fail with an OSError, reported as an unexpected error
                    if not os.path.exists(path):
                        raise ConfigError(f"{variable} {path} does not exist (a PEM file or directory of CAs)")
                    return path
            return True
        if isinstance(verify, str) and not self._bundle_checked:
            if not os.path.isfile(verify):
                raise ConfigError(f"ca_bundle {verify} is not a readable file (a PEM file of CA certificates)")
            self._bundle_checked = True
        return verify

    def _read_capped(self, resp: requests.Response, guard: SocketGuard, *, what: str = "token endpoint") -> bytes:
        """Read at most max_bytes before the deadline, whatever the peer does.

        ``read1`` returns as soon as any bytes arrive, so the deadline is checked between reads; the guard
        shuts the socket down at the deadline so that a blocked read cannot outlast it.
        """
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise TokenEndpointError(
                f"{what} response of {int(length)} bytes exceeds the {self.max_bytes}-byte cap",
                reason="idp_oversized",
                status=resp.status_code,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            while not guard.out_of_time():
                chunk = resp.raw.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise TokenEndpointError(
                        f"{what} response exceeds the {self.max_bytes}-byte cap",
                        reason="idp_oversized",
                        status=resp.status_code,
                    )
                chunks.append(chunk)
        except KongAuthError:
            raise
        except Exception as exc:  # urllib3 / http.client errors while the peer misbehaves
            if not guard.out_of_time():
                raise TokenEndpointError(
                    f"{what} response broke off: {type(exc).__name__}", reason="idp_unreachable"
                ) from exc
        if guard.out_of_time():
            raise DeadlineExceeded(f"{what} response was still arriving at the deadline")
        return b"".join(chunks)
