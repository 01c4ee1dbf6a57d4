"""Wall-clock budgets for transformers-style trainers on small CPUs: a callback that stops
training when the time is up, and a learning-rate schedule sized to that time."""

from __future__ import annotations

import time
from typing import Any


class Clock:
    """Seconds since first asked: the training clock the budget and the schedule share."""

    def __init__(self) -> None:
        self.start: float | None = None

    def elapsed(self) -> float:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        return now - self.start


def budget_lr_factor(step: int, *, elapsed: float, budget_s: float | None, total_steps: int,
                     warmup_ratio: float) -> float:
    """Linear warm-up then linear decay to zero, over whichever end comes first: the last
    step or the wall-clock budget.

    A step-based schedule sized for an epoch that a CPU budget cuts short never decays (a
    run stopped at 30 % of its steps trains at nearly peak rate to the end, and a long run may
    not even finish warming up); sizing the schedule to the progress actually reachable is
    what makes a budget-stopped run end on a low learning rate."""
    progress = step / max(1, total_steps)
    if budget_s:
        progress = max(progress, elapsed / budget_s)
    progress = min(1.0, progress)
    if warmup_ratio > 0 and progress < warmup_ratio:
        return progress / warmup_ratio
    return max(0.0, (1.0 - progress) / max(1e-9, 1.0 - warmup_ratio))


def time_budget(minutes: float | None, clock: Clock | None = None, *, evaluate: bool = True) -> Any:
    """A TrainerCallback that stops training once ``minutes`` of it have passed (then, with
    ``evaluate``, evaluates and saves, so the best checkpoint is chosen among all reached).
    On a shared 2-core machine a step's cost varies several-fold, so a step count alone
    cannot bound time. ``None`` never stops."""
    from transformers import TrainerCallback

    timer = clock if clock is not None else Clock()
    timer.elapsed()  # a clock of its own starts now; a shared one keeps its start

    class TimeBudget(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.budget_s = None if minutes is None else minutes * 60
            self.stopped_early = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.budget_s is not None and timer.elapsed() > self.budget_s:
                self.stopped_early = True
                control.should_training_stop = True
                if evaluate:
                    control.should_evaluate = True
                    control.should_save = True
            return control

    return TimeBudget()
