"""Register secret values with Airflow's secrets masker before anything could log them.

Every value goes through Airflow's public ``mask_secret`` (which also tells a task's supervisor), raw and in
each URL-encoded form Airflow may print (``Connection.get_uri()`` quotes a password with ``quote(safe="")``
and urlencodes extras with ``quote_plus``).

With the backend kwarg ``fast_masking`` (default true) the process's masker also gets an index
(masking_index.py): tokens, and every other secret with a run of 16 token characters (the ``conn.extra``
JSON the task SDK masks on every connection it returns, ``"Bearer <token>"``, client secrets, private keys),
are found by a fixed-size lookup instead of being joined into the one regex Airflow recompiles on every new
secret. Without it, a process that has minted 1,000 tokens spends most of each resolution in the masker
(docs/masking.md). If the masker's shape is not what the index expects, one WARNING is logged and Airflow's
masker is used as it is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import quote, quote_plus

from kong_secrets_backend.cache.bounded import BoundedMap

log = logging.getLogger(__name__)

_MIN_LENGTH = 5  # Airflow's masker ignores very short values; so do we (they would mask common words).


@cache
def _masker() -> Callable[[str], None] | None:
    try:  # Airflow 3.x task SDK: masks in the task process and tells the supervisor.
        from airflow.sdk.log import mask_secret

        return mask_secret
    except ImportError:
        pass
    try:  # Airflow 3.0 core
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]

        return mask_secret
    except ImportError:
        pass
    try:
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]

        return mask_secret
    except ImportError:
        return None


# Values already handed to the masker by this process (hot path: skip them). Bounded: a value evicted from this
# memo is only handed to the masker once more, which keeps it (Airflow's masker never forgets a value).
_registered: BoundedMap[str, bool] = BoundedMap(65_536)
_registered_pid = os.getpid()


class _FastMasking:
    """Whether this process gives Airflow's masker the token index, and whether it did."""

    def __init__(self) -> None:
        self.enabled = True  # a backend built with fast_masking=false turns it off for the whole process
        self.warned = False  # the fallback WARNING is logged once per process
        self.lock = threading.Lock()


_fast = _FastMasking()


def configure(*, fast_masking: bool) -> None:
    """Apply the backend kwarg ``fast_masking``. On: the index goes into this process's masker now, not at the
    first value the backend registers, because Airflow builds the backend in every process, supervisors included,
    and a supervisor (the triggerer's above all) registers every value its children mask without ever resolving a
    connection itself. Off wins: once off, the process keeps Airflow's masker as is (an index already installed is
    taken out again, its values turned back into regex alternatives)."""
    if fast_masking:
        try:
            masker = _masker()
            if masker is not None:
                _ensure_index(masker)
        except Exception:  # never fail the backend's construction (it runs while Airflow is being imported)
            log.debug("could not add the token index to the secrets masker yet", exc_info=True)
        return
    with _fast.lock:
        _fast.enabled = False
        masker = _airflow_masker(_masker())
        if masker is not None:
            from kong_secrets_backend.airflow_bridge import masking_index

            masking_index.uninstall(masker)


def fast_masking_active() -> bool:
    """True when this process's masker has the token index (for tests, the benchmark and the check command)."""
    masker = _airflow_masker(_masker())
    if masker is None:
        return False
    from kong_secrets_backend.airflow_bridge import masking_index

    return masking_index.is_installed(masker)


def _airflow_masker(mask_secret: Callable[[str], None] | None) -> Any:
    """The masker instance ``mask_secret`` writes into: the ``_secrets_masker()`` of the module defining it
    (airflow.sdk.log on Airflow 3.2+, airflow.sdk.execution_time.secrets_masker on 3.0 and 3.1)."""
    get = getattr(mask_secret, "__globals__", {}).get("_secrets_masker")
    if not callable(get):
        return None
    try:
        return get()
    except Exception:  # 3.0 raises when logging has no masker filter (not configured yet)
        return None


def _ensure_index(mask_secret: Callable[[str], None]) -> None:
    if not _fast.enabled:
        return
    masker = _airflow_masker(mask_secret)
    from kong_secrets_backend.airflow_bridge import masking_index

    if masker is not None and masking_index.is_installed(masker):
        return
    with _fast.lock:
        if not _fast.enabled:
            return
        problem = "no masker instance behind mask_secret" if masker is None else masking_index.install(masker)
        if problem and not _fast.warned:
            _fast.warned = True
            log.warning(
                "kong-secrets-backend: fast_masking is off for this process (%s); Airflow's secrets masker is "
                "used as it is, and it slows down with every token this process registers",
                problem,
            )


def url_encoded_forms(value: str) -> list[str]:
    """The value and its URL-encoded forms, each once."""
    forms = [value]
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        if encoded not in forms:
            forms.append(encoded)
    return forms


def mask(*values: str | None) -> None:
    """Mask each non-trivial value (and its URL-encoded forms) once per process.

    Never raises: masking must not break a resolution.
    """
    global _registered_pid
    if _registered_pid != os.getpid():  # a forked child must tell its own supervisor again
        _registered.clear()
        _registered_pid = os.getpid()
    for value in values:
        if not value or len(value) < _MIN_LENGTH or value in _registered:
            continue
        masker = _masker()
        if masker is None:
            return
        try:
            _ensure_index(masker)
        except Exception:  # pragma: no cover - defensive: the index is an optimisation
            log.debug("could not add the token index to the secrets masker", exc_info=True)
        try:
            for form in url_encoded_forms(value):
                masker(form)
            _registered[value] = True
        except Exception:  # pragma: no cover - defensive, the masker is Airflow's
            log.debug("could not register a value with the secrets masker", exc_info=True)
