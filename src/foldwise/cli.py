"""One entry point, one subcommand per stage: parses arguments, calls the stage's function, prints the outcome."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from foldwise.errors import FoldwiseError
from foldwise.metrics import NAMES
from foldwise.workspace import Workspace

log = logging.getLogger("foldwise")


def cmd_demo(args, ws: Workspace) -> None:
    from foldwise.data.demo import DEMOS, build_fashion_mnist

    out = Path(args.out or ws.root / "input" / args.name)
    if args.name == "fashion-mnist":
        build_fashion_mnist(out, args.source)
    else:
        DEMOS[args.name](out)
    print(f"wrote demo competition {args.name} to {out}")


def cmd_describe(args, ws: Workspace) -> None:
    from foldwise.data.describe import describe
    from foldwise.data.formats import load_competition

    print(describe(load_competition(args.comp, args.layout)))


def cmd_recipes(args, ws: Workspace) -> None:
    from foldwise.budget import parse_duration
    from foldwise.data.formats import load_competition
    from foldwise.training.choose import describe_choice, folds_to_train

    budget = parse_duration(args.time) if args.time else None
    folds = folds_to_train(args.folds, args.k, args.repeats)
    print(describe_choice(load_competition(args.comp, args.layout), budget, folds))


def cmd_folds(args, ws: Workspace) -> None:
    from foldwise.data.formats import load_competition
    from foldwise.pipeline import folds_step

    comp = load_competition(args.comp, args.layout, group_column=args.group_column)
    dedup = not args.no_dedup
    for line in folds_step(comp, ws, args.k, args.seed, args.dup_threshold, dedup, args.force, args.repeats):
        print(line)


def cmd_train(args, ws: Workspace) -> None:
    from foldwise.config import load_recipes
    from foldwise.data.formats import load_competition
    from foldwise.pipeline import train_step
    from foldwise.training.runs import fold_numbers

    comp = load_competition(args.comp, args.layout, args.metric)
    folds = [None] if args.full else fold_numbers(ws, comp, args.fold)
    epochs = dict(item.split("=", 1) for item in args.epochs)  # a time budget's plan, per recipe
    recipes = [
        replace(r, optim=replace(r.optim, epochs=int(epochs[r.name]))) if r.name in epochs else r
        for r in load_recipes(args.config, args.set)
    ]
    warm = None
    if args.from_fold is not None:
        if not args.full:
            raise FoldwiseError("--from-fold K starts the full retrain from fold K's weights: give it with --full.")
        fold_numbers(ws, comp, str(args.from_fold))  # a fold the folds file has, or one clear error
        warm = {r.name: args.from_fold for r in recipes}
    for run_dir in train_step(comp, ws, recipes, folds, args.force, warm_from=warm):
        print(f"done: {run_dir}")


def cmd_blend(args, ws: Workspace) -> None:
    from foldwise.config import load_recipe
    from foldwise.data.formats import load_competition
    from foldwise.pipeline import blend_step

    comp = load_competition(args.comp, args.layout, args.metric)
    names = [load_recipe(e).name if e.endswith((".yaml", ".yml")) else e for e in args.experiments]
    for line in blend_step(comp, ws, names, args.seed):
        print(line)


def cmd_report(args, ws: Workspace) -> None:
    from foldwise.data.formats import load_competition
    from foldwise.reporting.report import write_report

    print(f"wrote {write_report(ws, load_competition(args.comp, args.layout))} (+ report.html)")


def cmd_submit(args, ws: Workspace) -> None:
    from foldwise.data.formats import load_competition
    from foldwise.pipeline import submit_step

    for line in submit_step(load_competition(args.comp, args.layout), ws):
        print(line)


def cmd_plan(args, ws: Workspace) -> None:
    import time

    from foldwise.budget import parse_duration
    from foldwise.config import load_recipes
    from foldwise.data.formats import load_competition
    from foldwise.loop import planned
    from foldwise.training.choose import default_recipes, folds_to_train
    from foldwise.training.runs import fold_layout, fold_numbers

    comp = load_competition(args.comp, args.layout)
    budget = parse_duration(args.time) if args.time else None
    exists = ws.folds_csv(comp.name).exists()
    folds = (
        fold_numbers(ws, comp, args.folds) if exists else list(range(folds_to_train(args.folds, args.k, args.repeats)))
    )
    recipes = load_recipes(args.config or default_recipes(comp, budget, len(folds)), args.set)
    planned(comp, recipes, folds, fold_layout(ws, comp)[0] if exists else args.k, args.time or "", time.time())


def cmd_run(args, ws: Workspace) -> None:
    from foldwise.loop import options_from_environment, run_pipeline

    out = Workspace(args.out) if args.out else Workspace(Path(os.environ["ROOT"])) if os.environ.get("ROOT") else ws
    run_pipeline(args.comp, out, options_from_environment(args), args.layout)


def cmd_score(args, ws: Workspace) -> None:
    from foldwise.blending.submit import score_line, score_submission

    print(score_line(score_submission(Path(args.submission), Path(args.solution), args.metric or "accuracy")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foldwise", description=__doc__)
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="directory holding folds/ and output/ (default: .)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_training_commands(sub)
    add_blending_commands(sub)
    add_run_command(sub)
    add_plan_command(sub)
    return parser


def with_comp(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The competition directory argument and --layout, which every stage but `demo` and `score` takes."""
    from foldwise.data.formats import LAYOUTS

    p.add_argument("comp", type=Path, help="competition directory, e.g. input/digits")
    p.add_argument("--layout", choices=list(LAYOUTS), help="force a layout instead of detecting it")
    return p


def add_data_commands(sub) -> None:
    """demo, describe, recipes, folds."""
    p = sub.add_parser("demo", help="write a demo competition from data that ships offline")
    p.add_argument("name", choices=["digits", "fashion-mnist", "binary", "ordinal", "grouped"])
    p.add_argument("out", nargs="?", help="output directory (default: input/<name>)")
    p.add_argument("--source", type=Path, help="fashion-mnist: directory with the IDX files")
    p.set_defaults(func=cmd_demo)

    p = with_comp(sub.add_parser("describe", help="print the detected layout, classes, counts, test set, sizes"))
    p.set_defaults(func=cmd_describe)

    p = with_comp(sub.add_parser("recipes", help="print the recipes submit.sh trains by default here, and why"))
    p.add_argument("--time", help="the time budget the run will have (45m, 1h30m): the pace the choice assumes")
    p.add_argument("--folds", default="all", help="folds the run will train (all, 0, 0,2): they share the budget")
    p.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--repeats", type=int, default=1, help="repeated k-fold: splits of k folds (default 1)")
    p.set_defaults(func=cmd_recipes)

    p = with_comp(sub.add_parser("folds", help="stratified, duplicate-aware k-fold split -> folds/<comp>.csv"))
    p.add_argument("--k", type=int, default=5, help="number of folds; fold 0 is the 1/k holdout (default 5)")
    p.add_argument("--seed", type=int, default=42, help="split seed, recorded in folds/<comp>.json")
    p.add_argument(
        "--repeats", type=int, default=1, help="repeated k-fold: this many splits (seeds seed, seed+1, ...; default 1)"
    )
    p.add_argument("--force", action="store_true", help="replace existing folds that differ")
    p.add_argument("--no-dedup", action="store_true", help="skip the duplicate search (plain StratifiedKFold)")
    p.add_argument("--group-column", help="train.csv column whose groups stay in one fold (default: foldwise.yaml's)")
    p.add_argument(
        "--dup-threshold",
        type=int,
        default=4,
        metavar="BITS",
        help="near-duplicate: perceptual hashes at most BITS of 64 apart (0-8, default 4)",
    )
    p.set_defaults(func=cmd_folds)


def add_training_commands(sub) -> None:
    """train."""
    p = with_comp(sub.add_parser("train", help="train folds or the full retrain of one or more recipes"))
    p.add_argument("-c", "--config", action="append", required=True, help="recipe YAML (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fold", default="0", help="fold number, comma list or 'all' (default 0)")
    group.add_argument("--full", action="store_true", help="train on all labeled data (for the submission)")
    p.add_argument(
        "--from-fold",
        type=int,
        metavar="K",
        help="with --full: start from fold K's trained weights and train a shorter, gentler schedule on all "
        "labeled data (a warm full retrain, for when a full one does not fit the time)",
    )
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a recipe key")
    p.add_argument("--force", action="store_true", help="retrain even when finished artifacts exist")
    p.add_argument("--metric", help="the metric of the learning curve and early stopping (default: foldwise.yaml's)")
    p.add_argument("--epochs", action="append", default=[], metavar="RECIPE=N", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)


def add_blending_commands(sub) -> None:
    """blend, report, submit, score."""
    p = with_comp(sub.add_parser("blend", help="compare ensembles on OOF logits -> output/<comp>/blend/"))
    p.add_argument("experiments", nargs="+", help="experiment names under output/<comp>/, or their recipe files")
    p.add_argument("--metric", help=f"the competition's metric ({NAMES}; default: foldwise.yaml's, else accuracy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the nested-CV splits and bootstrap")
    p.set_defaults(func=cmd_blend)

    p = with_comp(sub.add_parser("report", help="rebuild output/<comp>/blend/report.md + report.html from artifacts"))
    p.set_defaults(func=cmd_report)

    p = with_comp(sub.add_parser("submit", help="blend.json + test logits -> output/<comp>/submission.csv"))
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("score", help="accuracy of a submission against a solution key")
    p.add_argument("submission")
    p.add_argument("solution")
    p.add_argument("--metric", help="roc_auc scores a probability column (default: accuracy, or MAP@k of top-k rows)")
    p.set_defaults(func=cmd_score)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    quiet_rank = os.environ.get("RANK", "0") != "0"  # under torchrun only rank 0 logs progress
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet_rank or args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args, Workspace(args.root))
    except FoldwiseError as e:
        print(f"foldwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


def add_plan_command(sub) -> None:
    """plan: what `foldwise run` would do within a time budget, and how long it would take; trains nothing."""
    p = with_comp(sub.add_parser("plan", help="print the plan (and its time) of `foldwise run` for a time budget"))
    p.add_argument("-c", "--config", action="append", help="recipe file, folder or packaged name (default: chosen)")
    p.add_argument("--time", help="the budget, e.g. 45m; without it, the full plan's estimate")
    p.add_argument("--folds", default="all", help="folds the run would train (default all)")
    p.add_argument("--k", type=int, default=5, help="folds in all when the folds file does not exist yet")
    p.add_argument("--repeats", type=int, default=1, help="repeats of k folds when the folds file does not exist yet")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a recipe key")
    p.set_defaults(func=cmd_plan)


def add_run_command(sub) -> None:
    """run: the whole loop. Unset options fall back to submit.sh's environment variables (FOLDS, K, SEED, SET,
    FORCE, DUP_THRESHOLD, NO_DEDUP, GPUS, METRIC, ROOT), then to the defaults."""
    p = with_comp(
        sub.add_parser("run", help="the whole loop: folds, training, blend, full retrain, submission, report")
    )
    p.add_argument(
        "-c",
        "--config",
        action="append",
        help="recipe file, folder or packaged name (default: chosen for the data, see `foldwise recipes`)",
    )
    p.add_argument("--folds", help="folds to train: all (default), 0 (the 80/20 holdout), 0,2  [FOLDS]")
    p.add_argument("--k", type=int, help="number of folds (default 5)  [K]")
    p.add_argument("--seed", type=int, help="split seed (default 42)  [SEED]")
    p.add_argument(
        "--repeats", type=int, help="repeated k-fold for small data: splits of k folds (default 1)  [REPEATS]"
    )
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a recipe key  [SET]")
    p.add_argument("--force", action="store_true", help="retrain finished runs  [FORCE=1]")
    p.add_argument("--dup-threshold", type=int, metavar="BITS", help="near-duplicate pHash distance  [DUP_THRESHOLD]")
    p.add_argument("--no-dedup", action="store_true", help="plain stratified folds  [NO_DEDUP=1]")
    p.add_argument("--group-column", help="train.csv column whose groups stay in one fold  [GROUP_COLUMN]")
    p.add_argument("--gpus", help="one fold per GPU in parallel, e.g. 0,1 (default: all when several)  [GPUS]")
    p.add_argument("--metric", help=f"the competition's metric ({NAMES}; default: foldwise.yaml's)  [METRIC]")
    p.add_argument("--out", type=Path, help="where folds/ and output/ go (default: --root)  [ROOT]")
    p.add_argument("--submission", type=Path, help="also write submission.csv here (e.g. /kaggle/working/)")
    p.add_argument("--time", help="the time budget, e.g. 45m or 1h30m: plan everything to end within it  [TIME]")
    p.set_defaults(func=cmd_run)
