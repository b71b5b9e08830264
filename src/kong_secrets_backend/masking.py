"""Register secret values with Airflow's secrets masker before anything could log them."""

from __future__ import annotations

import logging
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


def mask(*values: str | None) -> None:
    """Mask each non-trivial value. Never raises: masking must not break a resolution."""
    masker = _masker()
    if masker is None:
        return
    for value in values:
        if value and len(value) >= _MIN_LENGTH:
            try:
                masker(value)
            except Exception:  # pragma: no cover - defensive, the masker is Airflow's
                log.debug("could not register a value with the secrets masker", exc_info=True)
