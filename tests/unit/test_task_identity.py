"""The running task's identity: the task SDK's context, the check command's override, the triggerer's log context."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from structlog.contextvars import bound_contextvars

from kong_secrets_backend.airflow_bridge import task as task_module
from kong_secrets_backend.airflow_bridge.task import TaskIdentity, current_task, task_override


@pytest.fixture
def in_a_triggerer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process is a triggerer (its runner module is loaded), with no task SDK context stack."""
    monkeypatch.setitem(sys.modules, task_module._TRIGGERER, types.ModuleType(task_module._TRIGGERER))
    yield


def test_outside_any_task_there_is_no_identity() -> None:
    assert current_task() is None


def test_the_override_is_the_identity_within_its_block() -> None:
    identity = TaskIdentity(dag_id="d", task_id="t", run_id="r", try_number=1)
    with task_override(identity):
        assert current_task() is identity
    assert current_task() is None


@pytest.mark.usefixtures("in_a_triggerer")
def test_in_the_triggerer_the_identity_is_the_deferred_tasks_bound_around_its_trigger() -> None:
    with bound_contextvars(
        trigger_id=7, dag_id="orders", task_id="wait", run_id="manual__1", try_number=2, map_index=-1
    ):
        assert current_task() == TaskIdentity(dag_id="orders", task_id="wait", run_id="manual__1", try_number=2)


@pytest.mark.usefixtures("in_a_triggerer")
def test_a_triggerer_that_binds_only_the_trigger_id_resolves_outside_any_task() -> None:
    with bound_contextvars(trigger_id=7):  # Airflow 3.0's triggerer
        assert current_task() is None


def test_a_log_context_outside_the_triggerer_is_not_a_task_identity() -> None:
    with bound_contextvars(trigger_id=7, dag_id="orders", task_id="wait"):
        assert current_task() is None
