"""Fixtures shared by the attack tests: an identity provider that answers whatever a test asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.attacks.answering_idp import AnsweringIdp, answering_idp


@pytest.fixture
def idp() -> Iterator[AnsweringIdp]:
    """A token endpoint on 127.0.0.1 whose answers each test sets."""
    with answering_idp() as running:
        yield running
