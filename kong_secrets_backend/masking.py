"""Register secret values with Airflow's secrets masker before anything could log them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache

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


_registered: set[str] = set()  # values already handed to the masker by this process (hot path: skip them)
_registered_pid = os.getpid()


def mask(*values: str | None) -> None:
    """Mask each non-trivial value once per process. Never raises: masking must not break a resolution."""
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
            masker(value)
            _registered.add(value)
        except Exception:  # pragma: no cover - defensive, the masker is Airflow's
            log.debug("could not register a value with the secrets masker", exc_info=True)
