"""A per-resolution deadline: every network call gets at most the time that is left."""

from __future__ import annotations

import time

from kong_secrets_backend.errors import DeadlineExceeded


class Deadline:
    """Monotonic deadline; ``timeout()`` gives the time left for the next call, or raises."""

    __slots__ = ("_end", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout(self, cap: float | None = None, *, what: str = "the request") -> float:
        """Seconds the next call may take (at most ``cap``); raises DeadlineExceeded when none are left."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(f"deadline of {self.seconds:g}s exceeded before {what}")
        return min(left, cap) if cap is not None else left
