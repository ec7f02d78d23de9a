"""`foldwise run`, the whole loop that `submit.sh` wraps: folds -> training per fold -> blend + report -> full
retrain -> submission -> report again -> score; planned against a time budget (TIME / --time) or, without one, with
its time estimated and printed before anything trains (budget.py). The steps are pipeline.py's, the same functions
the per-stage subcommands run."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from foldwise.fileio import write_text_atomic
from foldwise.pipeline import blend_step, folds_step, stage, submit_step, train_step
from foldwise.workspace import Workspace


@dataclass(frozen=True)
class RunOptions:
    """Everything `foldwise run` takes (each option also read from submit.sh's environment variable)."""

    recipes: list[str] = field(default_factory=list)  # -c: files, folders or packaged names; [] = the defaults
    folds: str = "all"  # FOLDS: all | 0 | 0,2
    k: int = 5  # K
    seed: int = 42  # SEED: the split's
    repeats: int = 1  # REPEATS: repeated k-fold (repeat r split with seed + r)
    overrides: list[str] = field(default_factory=list)  # SET
    force: bool = False  # FORCE
    dup_threshold: int = 4  # DUP_THRESHOLD
    dedup: bool = True  # NO_DEDUP=1 turns it off
    gpus: list[str] | None = None  # GPUS: one fold per GPU in parallel; None = all visible when more than one
    time: str = ""  # TIME: the budget ("45m", "1h30m"); "" = none (the plan's estimate is printed all the same)
    metric: str = ""  # METRIC; "" = foldwise.yaml's, else accuracy
    group_column: str = ""  # GROUP_COLUMN; "" = foldwise.yaml's
    submission: Path | None = None  # --submission: a copy of submission.csv where the platform wants it


def run_pipeline(comp_dir: Path, ws: Workspace, options: RunOptions, layout: str | None = None) -> int:
    """The whole loop, planned against the time budget (or its time estimated): prints each stage and the outcome;
    returns 0 (errors raise FoldwiseError)."""
    from foldwise.budget import fold_models, parse_duration
    from foldwise.clock import clock_for
    from foldwise.config import load_recipes
    from foldwise.data.formats import load_competition
    from foldwise.reporting.report import write_report
    from foldwise.training.choose import default_recipes, folds_to_train
    from foldwise.training.runs import fold_layout, fold_numbers

    start = time.time()
    comp = load_competition(comp_dir, layout, options.metric or None, options.group_column or None)
    budget = parse_duration(options.time) if options.time else None
    if not options.recipes:  # chosen once: GPU children and reruns train exactly these
        folds = folds_to_train(options.folds, options.k, options.repeats)
        options = replace(options, recipes=default_recipes(comp, budget, folds))
    recipes = load_recipes(options.recipes, options.overrides)
    folds_args = (options.k, options.seed, options.dup_threshold, options.dedup, options.force, options.repeats)
    stage("1/5 folds", folds_step(comp, ws, *folds_args))
    k = fold_layout(ws, comp)[0]  # training images per run: (k - 1) / k of them, repeats or not
    plan, costs = planned(comp, recipes, fold_numbers(ws, comp, options.folds), k, options.time, start)
    write_text_atomic(ws.comp_dir(comp.name) / "plan.json", json.dumps({**asdict(plan), "start": start}, indent=1))
    plan = keep_finished_epochs(plan, ws, comp, recipes)
    recipes = [with_epochs(r, plan.epochs[r.name]) for r in recipes if r.name in plan.recipes]
    clock = clock_for(plan, costs, start)
    train_folds(comp_dir, comp, ws, options, recipes, plan.folds, clock, layout)
    names = blendable(ws, comp, [r.name for r in recipes])
    stage("3/5 blend on out-of-fold logits", blend_step(comp, ws, names, seed=0))
    if plan.full:
        warm = {n: plan.folds[0] for n in plan.warm if n in names}
        start_of = f", from fold {plan.folds[0]}'s weights for {', '.join(warm)} (a warm start)" if warm else ""
        print(f"== 4/5 full retrain on all labeled data{start_of}")
        train_step(comp, ws, [r for r in recipes if r.name in names], [None], options.force, clock, warm)
    else:
        print(f"== 4/5 full retrain: left out by the plan; {fold_models(plan.folds)} predicts the test images")
    stage("5/5 submission", submit_step(comp, ws, options.submission))
    record_run(ws, comp, start, clock.skipped)
    write_report(ws, comp, reuse=True)  # again, with the full retrain's evidence and the budget's outcome
    print_outcome(comp, ws)
    return 0


def planned(comp, recipes: list, folds: list[int], k: int, time_budget: str, start: float):
    """Measure each recipe here (cached probes), plan the run against the budget (`time_budget`, e.g. "45m"; ""
    for none) and print the plan."""
    from foldwise.budget import STARTUP_SECONDS, make_plan, parse_duration, plan_table, recipe_cost
    from foldwise.training.device import resolve_device

    costs, probed = {}, 0.0
    budget = parse_duration(time_budget) if time_budget else None
    for recipe in recipes:
        costs[recipe.name], seconds = recipe_cost(recipe, comp, k, resolve_device(recipe.run.device))
        probed += seconds
    images = len(comp.train_ids) + len(comp.test_ids)
    plan = make_plan(costs, [r.name for r in recipes], folds, images, STARTUP_SECONDS + probed, budget)
    print("== plan" + (f" for a {budget / 60:.0f} min budget" if budget else " (no TIME budget: an estimate)"))
    print(plan_table(plan, costs, start), flush=True)
    return plan, costs


def keep_finished_epochs(plan, ws: Workspace, comp, recipes: list):
    """A recipe with runs already finished keeps the epochs they trained for: another count would make it another
    recipe, refused as such; a rerun with the same budget can plan other epochs (its probes are cached by then). Runs
    record data.image_size 0 ("the images' own") resolved, so the recipes are compared resolved too."""
    import yaml

    from foldwise.training.runs import resolve_recipe, same

    epochs = dict(plan.epochs)
    for recipe in recipes:
        if recipe.name not in epochs:
            continue
        resolved = None  # as runs record it: resolved once, only when a run trained other epochs
        for config in sorted((ws.comp_dir(comp.name) / recipe.name).glob("*/config.yaml")):
            found = yaml.safe_load(config.read_text()).get("recipe") or {}
            trained = (found.get("optim") or {}).get("epochs")
            if trained in (None, epochs[recipe.name]):
                continue
            resolved = resolved or resolve_recipe(recipe, comp)
            if not same("recipe", found, with_epochs(resolved, trained).to_dict()):
                continue
            epochs[recipe.name] = trained
            plan.reasons.append(f"{recipe.name} keeps its {trained} epochs: runs of it are finished")
            break
    return replace(plan, epochs=epochs)


def with_epochs(recipe, epochs: int):
    """The recipe with the plan's epochs (itself when they are its own)."""
    if epochs == recipe.optim.epochs:
        return recipe
    return replace(recipe, optim=replace(recipe.optim, epochs=epochs))


def train_folds(comp_dir: Path, comp, ws: Workspace, options, recipes: list, folds: list[int], clock, layout) -> None:
    """Every fold of every recipe: one process per GPU when there are several, else here against the clock."""
    gpus = options.gpus if options.gpus is not None else default_gpus()
    on_gpus = f" on GPUs {','.join(gpus)}, one fold each" if gpus else ""
    print(f"== 2/5 train folds ({','.join(map(str, folds))}) of {', '.join(r.name for r in recipes)}{on_gpus}")
    if gpus:
        from foldwise.gpus import train_on_gpus

        epochs = {r.name: r.optim.epochs for r in recipes}  # the plan's, passed to every child
        train_on_gpus(comp_dir, ws, options, folds, gpus, layout, epochs)
    else:
        train_step(comp, ws, recipes, folds, options.force, clock)


def blendable(ws: Workspace, comp, names: list[str]) -> list[str]:
    """The recipes whose OOF rows cover the same folds (a budget may have left a recipe short of folds)."""
    folds = {n: frozenset(p.parent.name for p in (ws.comp_dir(comp.name) / n).glob("fold*/oof.npz")) for n in names}
    widest = max(folds.values(), key=len)
    kept = [n for n in names if folds[n] == widest]
    for n in names:
        if n not in kept:
            print(f"{n}: left out of the blend: it has folds {sorted(folds[n])}, the others {sorted(widest)}")
    return kept


def record_run(ws: Workspace, comp, start: float, skipped: list[str]) -> None:
    """plan.json gains what happened: the seconds the whole run took (against the plan's estimate and budget) and
    the runs the budget skipped."""
    path = ws.comp_dir(comp.name) / "plan.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(elapsed=time.time() - start, finished=time.time(), skipped=skipped)
    write_text_atomic(path, json.dumps(data, indent=1))


def default_gpus() -> list[str]:
    """All visible GPUs when there are several (one fold each), else none (train in this process)."""
    from foldwise.gpus import visible_gpus

    found = visible_gpus()
    return found if len(found) > 1 else []


def print_outcome(comp, ws: Workspace) -> None:
    """The blend table, the score against a key that ships with the data, and where everything is."""
    from foldwise.blending.submit import score_line, score_submission

    out = ws.comp_dir(comp.name)
    report = (out / "blend" / "report.md").read_text()
    table = report[report.index("| rank") :].split("\n\n")[0]
    print(f"\n== blend (out-of-fold)\n{table}")
    key = comp.solution_path or (out / "solution.csv" if (out / "solution.csv").is_file() else None)
    if key is not None:
        print(f"== score against {key} (a key that training never reads)")
        print(score_line(score_submission(ws.submission_csv(comp.name), key, comp.metric)))
    print(f"submission: {ws.submission_csv(comp.name)}")
    print(f"report:     {out / 'blend' / 'report.md'} and {out / 'blend' / 'report.html'}")


def options_from_environment(args) -> RunOptions:
    """`foldwise run`'s options: the command line first, then submit.sh's environment variables, then defaults."""
    env = os.environ
    gpus = args.gpus if args.gpus is not None else env.get("GPUS") or None
    return RunOptions(
        recipes=args.config or [],
        folds=args.folds or env.get("FOLDS") or "all",
        k=args.k if args.k is not None else int(env.get("K") or 5),
        seed=args.seed if args.seed is not None else int(env.get("SEED") or 42),
        repeats=args.repeats if args.repeats is not None else int(env.get("REPEATS") or 1),
        overrides=(args.set or []) + env.get("SET", "").split(),
        force=args.force or bool(env.get("FORCE")),
        dup_threshold=args.dup_threshold if args.dup_threshold is not None else int(env.get("DUP_THRESHOLD") or 4),
        dedup=not (args.no_dedup or bool(env.get("NO_DEDUP"))),
        gpus=[g for g in gpus.split(",") if g] if gpus else None,
        metric=args.metric or env.get("METRIC") or "",
        time=args.time or env.get("TIME") or "",
        group_column=args.group_column or env.get("GROUP_COLUMN") or "",
        submission=args.submission,
    )
