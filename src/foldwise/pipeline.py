"""The stages as steps with outcomes a person reads, and the whole loop (`foldwise run`, which `submit.sh` wraps):
folds -> training per fold -> blend + report -> full retrain -> submission -> report again -> score.

Each step is what its own subcommand runs (cli.py calls these same functions), so `foldwise run` and the
per-stage commands stay one implementation.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from foldwise.tracking import Tracker
from foldwise.workspace import Workspace

log = logging.getLogger("foldwise")


def folds_step(
    comp, ws: Workspace, k: int, seed: int, threshold: int, dedup: bool, force: bool, repeats: int = 1
) -> list[str]:
    """Duplicate search (unless `dedup` is off), then stratified (group-aware) folds, `repeats` splits of them
    (repeated k-fold); lines saying what happened."""
    from foldwise.data.folds import check_class_sizes, make_folds, write_folds

    lines, groups, extra = [], None, {"duplicates": {"checked": False}}
    if dedup:
        from foldwise.data.leakage import find_duplicates, group_ids

        check_class_sizes(comp, k)  # fail before decoding anything
        report = find_duplicates(comp, ws.cache_dir(comp.name), threshold=threshold)
        lines += [report.summary()] + [f"  {line}" for line in report.examples(comp, 3)]
        if report.train_test_pairs:
            lines.append(
                f"warning: {len(report.train_test_pairs)} test image(s) look like training images (examples "
                "above): the models have as good as seen them, so the test score can beat the validation score"
            )
        groups = group_ids(report, len(comp.train_ids))
        extra = {"duplicates": report.counts(), "test_pairs": report.pair_examples(comp)}
    if comp.train_groups:
        sizes = pd.Series(comp.train_groups).value_counts()
        extra["named_groups"] = {
            "groups": int(len(sizes)),
            "largest": int(sizes.max()),
            "median": float(sizes.median()),
        }
        lines.append(
            f"groups of train.csv's group column: {len(sizes)} (largest {sizes.max()} images), each kept in "
            "one fold together with the duplicate groups"
        )
    df = make_folds(comp, k=k, seed=seed, groups=groups, repeats=repeats)
    path = ws.folds_csv(comp.name)
    changed = write_folds(df, path, k=k, seed=seed, force=force, extra=extra)
    sizes = df["fold"].value_counts().sort_index().tolist()
    grouped = f", {(df['group'].value_counts() > 1).sum()} duplicate group(s) kept whole" if "group" in df else ""
    lines.append(
        f"{'wrote' if changed else 'unchanged'} {path}: {len(df)} images, {len(comp.classes)} classes, "
        f"k={k} (fold sizes {sizes}), seed {seed}{grouped}"
        + (
            f"; repeated {repeats} times (seeds {seed}..{seed + repeats - 1}): {k * repeats} runs per recipe"
            if repeats > 1
            else ""
        )
    )
    return lines


def train_step(
    comp, ws: Workspace, recipes: list, folds: list[int | None], force: bool, clock=None, warm_from: dict | None = None
) -> list[Path]:
    """Train (or skip, or predict again) every fold of every recipe in this process; the run folders. With a time
    budget's `clock`, each run gets a deadline that leaves time for the rest, and one that cannot fit is skipped.
    `warm_from` (recipe name -> fold): those recipes' full retrains start from that fold model's weights."""
    from foldwise.training.lock import claim
    from foldwise.training.runs import plan_run

    done = []
    for recipe in recipes:
        for fold in folds:
            plan = plan_run(comp, recipe, fold, ws, (warm_from or {}).get(recipe.name))
            what = f"run {recipe.name} {'full' if fold is None else f'fold {fold}'}"
            if clock is not None and what in [q for q, _ in clock.queue]:
                print(clock.line(what), flush=True)
                if too_late(clock, what, done):
                    continue
            with claim(plan):
                status = plan.status(force)
                if status != "done":
                    from foldwise.training.train import carry_out  # torch + timm load only when there is work

                    deadline = clock.deadline_of(what) if clock is not None else None
                    carry_out(plan, status, force=force, deadline=deadline)
            done.append(plan.run_dir)
    return done


def too_late(clock, what: str, done: list) -> bool:
    """Whether the budget has no room left for `what` (never for the first run: a submission needs a model)."""
    left = clock.left(what)
    estimate = dict(clock.queue)[what]
    if left is None or not done or left >= 0.25 * estimate:
        return False
    clock.skipped.append(what.removeprefix("run "))
    print(
        f"time budget: skipping {what.removeprefix('run ')} ({left / 60:.1f} min left for about "
        f"{estimate / 60:.1f} min of work)",
        flush=True,
    )
    return True


def blend_step(comp, ws: Workspace, experiments: list[str], seed: int, tracker: str = "") -> list[str]:
    """Compare every candidate on the OOF logits, write blend.json and the report; the table and the choice. The
    candidate table also goes to the tracker (FOLDWISE_TRACKER or `tracker`), when one is chosen."""
    from foldwise.blending.blend import compare, load_oof, write_blend
    from foldwise.reporting.candidates import candidate_table
    from foldwise.reporting.report import write_report

    oofs = [load_oof(ws.comp_dir(comp.name) / exp) for exp in experiments]
    metric = comp.metric
    result = compare(oofs, metric=metric, seed=seed)
    write_blend(result, list(comp.classes), ws.blend_dir(comp.name), metric=metric, seed=seed)
    report = write_report(ws, comp)
    header, body = candidate_table(result.rows)
    log_table = Tracker(tracker, f"{comp.name} blend", ws.blend_dir(comp.name), {"metric": metric, "seed": seed})
    log_table.table("blend candidates (nested-CV OOF)", header, body)
    log_table.close()
    chosen = f"chosen: {result.fitted.method} of {', '.join(result.fitted.models)}; report: {report} (+ report.html)"
    return [format_table(header, body), chosen]


def submit_step(comp, ws: Workspace, copy_to: Path | None = None) -> list[str]:
    """Write submission.csv (and the key of a test split that shipped labeled); copy it where the platform wants."""
    from foldwise.blending.submit import make_submission
    from foldwise.data.competition import write_solution
    from foldwise.fileio import write_atomic

    path, info = make_submission(comp, ws)
    sources = "; ".join(f"{k}: {v}" for k, v in info["sources"].items())
    lines = [f"wrote {path}: {info['rows']} rows, {info['method']} of {', '.join(info['models'])} ({sources})"]
    if copy_to is not None and Path(copy_to).resolve() != path.resolve():
        write_atomic(copy_to, lambda tmp: shutil.copyfile(path, tmp))
        lines.append(f"copied it to {copy_to}")
    key = write_solution(comp, ws.comp_dir(comp.name) / "solution.csv")  # labeled held-out split (CIFAR test, ...)
    if key is not None:
        lines.append(f"wrote {key}: the labels of the test split that shipped labeled; `foldwise score` it")
    return lines


def format_table(header: list[str], body: list[list]) -> str:
    """A plain-text table with aligned columns for the terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def stage(title: str, lines: list[str]) -> None:
    """A stage's header and what it said."""
    print(f"== {title}")
    for line in lines:
        print(line)
