"""The best submission within a time budget: measure each recipe here (training/probe.py), plan the whole pipeline
(folds, training, blend, full retrain, submission, report) to end within the budget, and print the plan first.

    foldwise plan input/<comp> -c speed -c cpu-cnn --time 45m     # prints the plan only
    TIME=45m bash submit.sh input/<comp>                          # plans, then runs to the plan

The plan degrades in a fixed order until it fits 90% of the budget (the rest absorbs estimation error):
all folds + full retrain -> all folds, the fold models' average standing in for the full retrain -> fold 0 + full
retrain -> fold 0 + a warm full retrain -> fold 0 alone -> fewer epochs (down to half the recipe's) -> fewer recipes
(the last named goes first; the defaults name the strongest first) -> one recipe with as many epochs as fit. The warm
full retrain starts from the fold's weights and trains 30% of its epochs at 30% of its learning rate
(runs.warm_recipe): it shows the model the held-out fifth for about 0.4 of a fold's cost. A plan that fits with room to
spare trains the recipes that learn from scratch for more epochs (up to MAX_EPOCH_SHARE of their own; fine-tuned and
cached-feature recipes keep theirs), a warm retrain's following its fold's. On cifar10-50k with 60 minutes: fold 0
alone at the recipe's 10 epochs left 21 of them unused, raised to 15 epochs it scored 89.6% on the key; fold 0 at
12 and a warm full retrain of 4 epochs scored 90.2% in 53.7 min (README "Time budget"). While it runs, every run
re-plans its remaining epochs from its measured epoch times (train.fit) so it ends by its deadline with its learning
rate annealed, and a stage that no longer fits is skipped with the submission still written.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace

from foldwise.errors import FoldwiseError

SAFETY = 0.9  # the plan fills this share of the budget
STARTUP_SECONDS = 10.0  # imports, reading the competition
DECODE_IPS = 2000.0  # images decoded per second (2 worker processes, small JPEGs; the duplicate search decodes again)
BLEND_SECONDS = 20.0  # nested-CV blend + report + submission, each time they run (measured: 8-20 s on the demos)
MIN_EPOCH_SHARE = 0.5  # epochs are cut to no less than this share of the recipe's before recipes are dropped
MAX_EPOCH_SHARE = 1.5  # a budget with room to spare raises epochs to no more than this share of the recipe's


def parse_duration(text: str) -> float:
    """Seconds of '45m', '1h30m', '90s', '2h' or a plain number of minutes."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s", "", text):
        raise FoldwiseError(f"time budget {text!r}: write it like 45m, 1h30m, 90s or a number of minutes.")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@dataclass(frozen=True)
class RecipeCost:
    """What one recipe costs here, from its measured speed and the data's size."""

    name: str
    epochs: int  # the recipe's own
    ips: float  # measured training images per second here
    epoch_seconds: float  # one epoch of one fold: training + scoring the held-out rows
    fold_extra: float  # per fold: OOF and test prediction with TTA, writing artifacts
    full_epoch_seconds: float  # one epoch of the full retrain
    once: float  # features extracted once, or 0
    grows: bool = True  # may train more epochs when the budget has room: from scratch (not pretrained, not features)
    full_extra: float | None = None  # the full retrain's: test prediction only (None: as fold_extra)


@dataclass(frozen=True)
class Plan:
    """What will run: recipes with their epochs, folds, whether the full retrain runs, and the estimates."""

    recipes: list[str]
    epochs: dict[str, int]
    folds: list[int]
    full: bool
    warm: list[str] = field(default_factory=list)  # recipes whose full retrain starts from fold folds[0]'s weights
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> estimated seconds
    budget: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def tta_views(recipe) -> int:
    """Forward passes per image when predicting with the recipe's test-time augmentation."""
    views = 3 if recipe.data.tta_translate else 1
    return views * (2 if recipe.data.tta_hflip else 1)


def recipe_cost(recipe, comp, k: int, device) -> tuple[RecipeCost, float]:
    """A recipe's costs here from its measured speed (probe, cached per machine); and the seconds the probe took."""
    from foldwise.training.probe import probe
    from foldwise.training.runs import resolve_recipe

    recipe = resolve_recipe(recipe, comp)
    start = time.perf_counter()
    speed = probe(recipe, device, len(comp.classes))
    probed = time.perf_counter() - start
    n, n_test, views = len(comp.train_ids), len(comp.test_ids), tta_views(recipe)
    valid, train = n / k, n - n / k
    if recipe.model.cache_features:  # the backbone runs once per image; the classifier trains in moments
        once = (n + n_test) * views / speed.infer_ips
        cost = RecipeCost(recipe.name, recipe.optim.epochs, speed.train_ips, 0.05, 1.0, 0.05, once, grows=False)
        return cost, probed
    epoch = train / speed.train_ips + valid / speed.infer_ips
    extra, full_extra = ((rows * views / speed.infer_ips + 2.0) for rows in (valid + n_test, n_test))
    scratch = not (recipe.model.pretrained or recipe.model.pretrained_file)
    full_epoch = n / speed.train_ips
    cost = RecipeCost(
        recipe.name, recipe.optim.epochs, speed.train_ips, epoch, extra, full_epoch, 0.0, scratch, full_extra
    )
    return cost, probed


def full_epochs_of(plan: Plan, name: str) -> int:
    """Epochs of a recipe's full retrain: its fold epochs, or runs.warm_recipe's share of them when it is warm."""
    from foldwise.training.runs import warm_epochs

    return warm_epochs(plan.epochs[name]) if name in plan.warm else plan.epochs[name]


def full_seconds(plan: Plan, cost: RecipeCost) -> float:
    """One recipe's full retrain (0 when the plan has none)."""
    if not plan.full:
        return 0.0
    extra = cost.fold_extra if cost.full_extra is None else cost.full_extra
    return full_epochs_of(plan, cost.name) * cost.full_epoch_seconds + extra


def estimate(plan: Plan, costs: dict[str, RecipeCost], images: int, fixed: float) -> Plan:
    """The plan with its per-stage estimates filled in."""
    chosen = [costs[n] for n in plan.recipes]
    train = sum(c.once + len(plan.folds) * (plan.epochs[c.name] * c.epoch_seconds + c.fold_extra) for c in chosen)
    full = sum(full_seconds(plan, c) for c in chosen)
    seconds = {
        "start + probes": fixed,
        "decode + folds": 2 * images / DECODE_IPS,
        "train folds": train,
        "blend + report": BLEND_SECONDS,
        "full retrain": full,
        "submission + report": BLEND_SECONDS,
    }
    return replace(plan, seconds=seconds)


def fold_models(folds: list[int]) -> str:
    """What predicts the test images when the full retrain does not run."""
    return f"fold {folds[0]}'s model" if len(folds) == 1 else "the fold models' average"


def ladder(costs: dict[str, RecipeCost], recipes: list[str], folds: list[int]):
    """Plans from the richest down, in the order the module docstring gives."""
    own = {n: costs[n].epochs for n in recipes}
    warm = [n for n in recipes if not costs[n].once]  # classifiers on cached features retrain in full in moments
    first = folds[0]
    shapes = [(folds, True, [], "all folds and the full retrain")]
    if len(folds) > 1:
        shapes += [
            (folds, False, [], f"the full retrain left out: {fold_models(folds)} predicts the test images"),
            ([first], True, [], f"fold {first} alone, then the full retrain"),
        ]
    if warm:
        why = f"fold {first}, then a warm full retrain from its weights ({', '.join(warm)}): a full one does not fit"
        shapes.append(([first], True, warm, why))
    alone = (
        f"fold {first} alone; its model predicts"
        if len(folds) > 1
        else f"the full retrain left out: fold {first}'s model predicts"
    )
    shapes.append(([first], False, [], f"{alone} the test images"))
    for chosen, full, warmed, why in shapes:
        yield Plan(recipes, dict(own), chosen, full, warmed, reasons=[why])
    last_folds, last_full, _, why = shapes[-1]
    for share in (0.75, MIN_EPOCH_SHARE):
        epochs = {n: max(1, round(e * share)) for n, e in own.items()}
        yield Plan(recipes, epochs, last_folds, last_full, reasons=[why, f"epochs cut to {share:.0%} of the recipes'"])
    for count in range(len(recipes) - 1, 0, -1):
        kept = recipes[:count]
        yield Plan(
            kept,
            {n: own[n] for n in kept},
            last_folds,
            last_full,
            reasons=[why, f"only {', '.join(kept)}: more epochs for fewer recipes"],
        )


def make_plan(
    costs: dict[str, RecipeCost], recipes: list[str], folds: list[int], images: int, fixed: float, budget: float | None
) -> Plan:
    """The richest plan of the ladder that fits SAFETY x budget (the full plan when there is no budget); failing
    all, the first recipe alone with as many epochs as fit (at least one)."""
    first = estimate(next(ladder(costs, recipes, folds)), costs, images, fixed)
    if budget is None:
        return replace(first, reasons=["no time budget: the full plan"])
    for plan in ladder(costs, recipes, folds):
        plan = estimate(plan, costs, images, fixed)
        if plan.total <= SAFETY * budget:
            return replace(grow(plan, costs, images, fixed, SAFETY * budget), budget=budget)
    name, last = recipes[0], estimate(Plan([recipes[0]], {recipes[0]: 1}, [folds[0]], False), costs, images, fixed)
    spare = SAFETY * budget - last.total
    epochs = max(1, 1 + math.floor(spare / costs[name].epoch_seconds)) if spare > 0 else 1
    plan = estimate(Plan([name], {name: min(epochs, costs[name].epochs)}, [folds[0]], False), costs, images, fixed)
    why = [f"only {name}, fold {folds[0]}, {plan.epochs[name]} epoch(s): nothing larger fits"]
    if plan.total > budget:
        why.append(f"even this needs about {plan.total / 60:.1f} min of the {budget / 60:.1f} min budget")
    return replace(plan, budget=budget, reasons=why)


def grow(plan: Plan, costs: dict[str, RecipeCost], images: int, fixed: float, room: float) -> Plan:
    """`plan` with the epochs of its recipes that train from scratch at their own count raised by one share for all,
    in steps of 5%, as far as `room` seconds and MAX_EPOCH_SHARE allow. Fine-tuned recipes keep their measured
    epochs, and classifiers on cached features, which train in moments, keep theirs."""
    growing = [n for n in plan.recipes if costs[n].grows and plan.epochs[n] == costs[n].epochs]
    best = plan
    for step in range(1, round((MAX_EPOCH_SHARE - 1) / 0.05) + 1):
        epochs = {**plan.epochs, **{n: round(costs[n].epochs * (1 + 0.05 * step)) for n in growing}}
        if epochs == best.epochs:
            continue
        candidate = estimate(replace(plan, epochs=epochs), costs, images, fixed)
        if candidate.total > room:
            break
        best = candidate
    if best is plan:
        return plan
    raised = ", ".join(f"{n} {costs[n].epochs} -> {best.epochs[n]}" for n in growing)
    return replace(best, reasons=[*plan.reasons, f"room to spare: more epochs ({raised})"])


def plan_table(plan: Plan, costs: dict[str, RecipeCost], start: float | None = None) -> str:
    """The plan as a table a person reads before anything trains."""
    start = time.time() if start is None else start
    lines = [
        "| recipe | folds | epochs | train img/s | est. min per fold | est. min full retrain |",
        "|---|---|---|---|---|---|",
    ]
    for name in plan.recipes:
        cost = costs[name]
        per_fold = (plan.epochs[name] * cost.epoch_seconds + cost.fold_extra) / 60
        full = full_seconds(plan, cost) / 60
        folds = ",".join(map(str, plan.folds))
        kind = f" (from fold {plan.folds[0]}, {full_epochs_of(plan, name)} epochs)" if name in plan.warm else ""
        lines.append(
            f"| {name} | {folds} | {plan.epochs[name]} | {cost.ips:,.0f} | {per_fold:.1f} | "
            f"{full:.1f}{kind if plan.full else ' (skipped)'} |"
        )
    stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in plan.seconds.items())
    eta = time.strftime("%H:%M", time.localtime(start + plan.total))
    budget = f" of a {plan.budget / 60:.0f} min budget" if plan.budget else ""
    lines += [
        "",
        f"estimated minutes per stage: {stages}",
        f"total about {plan.total / 60:.1f} min{budget}, done about {eta}; {'; '.join(plan.reasons)}",
    ]
    return "\n".join(lines)
