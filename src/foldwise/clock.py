"""The time budget while the pipeline runs: the queue of runs with their estimates (from budget.py's plan), per-run
deadlines that leave time for everything after, and one progress line for the whole pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from foldwise.budget import BLEND_SECONDS, Plan, RecipeCost, full_seconds


@dataclass
class Clock:
    """The budget while the pipeline runs: per-run deadlines that leave time for everything after, and one progress
    line for the whole pipeline."""

    start: float
    deadline: float | None
    queue: list[tuple[str, float]]  # (what, estimated seconds) in the order they will run
    skipped: list[str] = field(default_factory=list)  # runs the budget had no room left for

    def position(self, what: str) -> int:
        return [q for q, _ in self.queue].index(what)

    def deadline_of(self, what: str) -> float | None:
        """When `what` must end for the rest of the plan to fit (None without a budget)."""
        if self.deadline is None:
            return None
        return self.deadline - sum(s for _, s in self.queue[self.position(what) + 1 :])

    def left(self, what: str) -> float | None:
        """Seconds `what` may take from now (None without a budget)."""
        end = self.deadline_of(what)
        return None if end is None else end - time.time()

    def line(self, what: str) -> str:
        """'[run 3 of 12] cpu-cnn fold 2 | elapsed 4.1 min | ETA 18:45 (budget ends 18:50)'."""
        runs = [q for q, _ in self.queue if q.startswith("run ")]
        number = runs.index(what) + 1 if what in runs else len(runs)
        now = time.time()
        eta = time.strftime("%H:%M", time.localtime(now + sum(s for _, s in self.queue[self.position(what) :])))
        ends = f" (budget ends {time.strftime('%H:%M', time.localtime(self.deadline))})" if self.deadline else ""
        return (
            f"[run {number} of {len(runs)}] {what.removeprefix('run ')} | elapsed {(now - self.start) / 60:.1f} "
            f"min | ETA {eta}{ends}"
        )


def clock_for(plan: Plan, costs: dict[str, RecipeCost], start: float) -> Clock:
    """The run queue of a plan with each item's estimate: fold runs, the blend, full retrains, the submission."""
    queue = []
    for name in plan.recipes:
        cost = costs[name]
        for i, fold in enumerate(plan.folds):
            once = cost.once if i == 0 else 0.0
            queue.append((f"run {name} fold {fold}", once + plan.epochs[name] * cost.epoch_seconds + cost.fold_extra))
    queue.append(("blend", BLEND_SECONDS))
    if plan.full:
        queue += [(f"run {n} full", full_seconds(plan, costs[n])) for n in plan.recipes]
    queue.append(("submission", BLEND_SECONDS))
    return Clock(start, None if plan.budget is None else start + plan.budget, queue)
