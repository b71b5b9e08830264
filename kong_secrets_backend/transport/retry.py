"""Bounded retries for transient failures (a 5xx, a 429, a dropped connection), inside the resolution deadline.

Uses tenacity (already in Airflow's tree): at most 3 attempts, exponential backoff with jitter, and never
a wait that would run past the deadline. Only errors marked ``transient`` (see errors.py) are retried;
refusals (a 4xx OAuth error, a bad secret) are not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kong_secrets_backend.errors import KongAuthError

if TYPE_CHECKING:
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 3


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: one of our errors with its ``transient`` flag set (errors.py decides the flag)."""
    return isinstance(exc, KongAuthError) and exc.transient


def with_retries(call: Callable[[], T], deadline: Deadline, *, what: str) -> T:
    """call(), retried on transient failures while attempts and the deadline allow; the last error is raised."""
    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception,
        wait_exponential,
        wait_random,
    )

    wait = wait_exponential(multiplier=0.1, max=1.0) + wait_random(0, 0.1)  # 0.1-0.2 s, 0.2-0.3 s, ...

    def stop(state: RetryCallState) -> bool:  # out of attempts, or the next wait would leave no time
        return state.attempt_number >= MAX_ATTEMPTS or deadline.remaining() <= wait(state) + 0.05

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("kong-secrets-backend: %s failed (%s); retrying (attempt %d)", what, exc, state.attempt_number + 1)

    retrying: Any = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop,
        wait=wait,
        before_sleep=note,
        reraise=True,
    )
    return retrying(call)  # type: ignore[no-any-return,unused-ignore]
