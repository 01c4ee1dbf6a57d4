"""The wall-clock budget callback shared by the sentiment and reranker trainers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from textlatent.training import Clock, time_budget


def _control() -> SimpleNamespace:
    return SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)


class _FakeClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def elapsed(self) -> float:
        return self.now


@pytest.mark.parametrize("evaluate", [True, False])
def test_time_budget_stops_only_after_its_minutes_and_evaluates_only_when_asked(evaluate: bool) -> None:
    clock = _FakeClock()
    callback = time_budget(1.0, clock, evaluate=evaluate)
    clock.now = 59.0
    control = callback.on_step_end(None, None, _control())
    assert not control.should_training_stop and not callback.stopped_early
    clock.now = 61.0
    control = callback.on_step_end(None, None, _control())
    assert control.should_training_stop and callback.stopped_early
    assert control.should_evaluate is evaluate and control.should_save is evaluate


def test_no_budget_never_stops() -> None:
    clock = _FakeClock()
    callback = time_budget(None, clock)
    clock.now = 1e9
    assert not callback.on_step_end(None, None, _control()).should_training_stop
