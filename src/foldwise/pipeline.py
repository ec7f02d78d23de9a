"""The stages as steps with outcomes a person reads, and the whole loop (`foldwise run`, which `submit.sh` wraps):
folds -> training per fold -> blend + report -> full retrain -> submission -> report again -> score.

Each step is what its own subcommand runs (cli.py calls these same functions), so `foldwise run` and the
per-stage commands stay one implementation.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from foldwise.tracking import Tracker
from foldwise.workspace import Workspace

log = logging.getLogger("foldwise")


def folds_step(comp, ws: Workspace, k: int, seed: int, threshold: int, dedup: bool, force: bool) -> list[str]:
    """Duplicate search (unless `dedup` is off), then stratified (group-aware) folds; lines saying what happened."""
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
    df = make_folds(comp, k=k, seed=seed, groups=groups)
    path = ws.folds_csv(comp.name)
    changed = write_folds(df, path, k=k, seed=seed, force=force, extra=extra)
    sizes = df["fold"].value_counts().sort_index().tolist()
    grouped = f", {(df['group'].value_counts() > 1).sum()} duplicate group(s) kept whole" if "group" in df else ""
    lines.append(
        f"{'wrote' if changed else 'unchanged'} {path}: {len(df)} images, {len(comp.classes)} classes, "
        f"k={k} (fold sizes {sizes}), seed {seed}{grouped}"
    )
    return lines


def train_step(comp, ws: Workspace, recipes: list, folds: list[int | None], force: bool) -> list[Path]:
    """Train (or skip, or predict again) every fold of every recipe in this process; the run folders."""
    from foldwise.training.runs import claim, plan_run

    done = []
    for recipe in recipes:
        for fold in folds:
            plan = plan_run(comp, recipe, fold, ws)
            with claim(plan):
                status = plan.status(force)
                if status != "done":
                    from foldwise.training.train import carry_out  # torch + timm load only when there is work

                    carry_out(plan, status, force=force)
            done.append(plan.run_dir)
    return done


def blend_step(comp, ws: Workspace, experiments: list[str], metric: str, seed: int, tracker: str = "") -> list[str]:
    """Compare every candidate on the OOF logits, write blend.json and the report; the table and the choice. The
    candidate table also goes to the tracker (FOLDWISE_TRACKER or `tracker`), when one is chosen."""
    from foldwise.blending.blend import compare, load_oof, write_blend
    from foldwise.reporting.candidates import candidate_table
    from foldwise.reporting.report import write_report

    oofs = [load_oof(ws.comp_dir(comp.name) / exp) for exp in experiments]
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


@dataclass(frozen=True)
class RunOptions:
    """Everything `foldwise run` takes (each option also read from submit.sh's environment variable)."""

    recipes: list[str] = field(default_factory=list)  # -c: files, folders or packaged names; [] = the defaults
    folds: str = "all"  # FOLDS: all | 0 | 0,2
    k: int = 5  # K
    seed: int = 42  # SEED: the split's
    overrides: list[str] = field(default_factory=list)  # SET
    force: bool = False  # FORCE
    dup_threshold: int = 4  # DUP_THRESHOLD
    dedup: bool = True  # NO_DEDUP=1 turns it off
    gpus: list[str] | None = None  # GPUS: one fold per GPU in parallel; None = all visible when more than one
    metric: str = "accuracy"  # METRIC
    submission: Path | None = None  # --submission: a copy of submission.csv where the platform wants it


def run_pipeline(comp_dir: Path, ws: Workspace, options: RunOptions, layout: str | None = None) -> int:
    """The whole loop; prints each stage and the outcome; returns 0 (errors raise FoldwiseError)."""
    from foldwise.config import load_recipes
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import default_recipes, fold_numbers

    comp = load_competition(comp_dir, layout)
    recipes = load_recipes(options.recipes or default_recipes(comp), options.overrides)
    names = [r.name for r in recipes]
    stage(
        "1/5 folds", folds_step(comp, ws, options.k, options.seed, options.dup_threshold, options.dedup, options.force)
    )
    folds = fold_numbers(ws, comp, options.folds)
    gpus = options.gpus if options.gpus is not None else default_gpus()
    on_gpus = f" on GPUs {','.join(gpus)}, one fold each" if gpus else ""
    print(f"== 2/5 train folds ({options.folds}) of {', '.join(names)}{on_gpus}")
    if gpus:
        from foldwise.gpus import train_on_gpus

        train_on_gpus(comp_dir, ws, options, folds, gpus, layout)
    else:
        train_step(comp, ws, recipes, folds, options.force)
    stage("3/5 blend on out-of-fold logits", blend_step(comp, ws, names, options.metric, seed=0))
    print("== 4/5 full retrain on all labeled data")
    train_step(comp, ws, recipes, [None], options.force)
    from foldwise.reporting.report import write_report

    stage("5/5 submission", submit_step(comp, ws, options.submission))
    write_report(ws, comp)  # again, now with the full retrain's evidence
    print_outcome(comp, ws)
    return 0


def stage(title: str, lines: list[str]) -> None:
    """A stage's header and what it said."""
    print(f"== {title}")
    for line in lines:
        print(line)


def default_gpus() -> list[str]:
    """All visible GPUs when there are several (one fold each), else none (train in this process)."""
    from foldwise.gpus import visible_gpus

    found = visible_gpus()
    return found if len(found) > 1 else []


def print_outcome(comp, ws: Workspace) -> None:
    """The blend table, the score against a key that ships with the data, and where everything is."""
    from foldwise.blending.submit import score_submission

    out = ws.comp_dir(comp.name)
    report = (out / "blend" / "report.md").read_text()
    table = report[report.index("| rank") :].split("\n\n")[0]
    print(f"\n== blend (out-of-fold)\n{table}")
    key = comp.solution_path or (out / "solution.csv" if (out / "solution.csv").is_file() else None)
    if key is not None:
        print(f"== score against {key} (a key that training never reads)")
        result = score_submission(ws.submission_csv(comp.name), key)
        print(f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['rows']})")
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
        overrides=(args.set or []) + env.get("SET", "").split(),
        force=args.force or bool(env.get("FORCE")),
        dup_threshold=args.dup_threshold if args.dup_threshold is not None else int(env.get("DUP_THRESHOLD") or 4),
        dedup=not (args.no_dedup or bool(env.get("NO_DEDUP"))),
        gpus=[g for g in gpus.split(",") if g] if gpus else None,
        metric=args.metric or env.get("METRIC") or "accuracy",
        submission=args.submission,
    )
