"""One entry point, one subcommand per stage: parses arguments, calls the stage's function, prints the outcome."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from foldwise.errors import FoldwiseError
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
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import default_recipes

    for path in default_recipes(load_competition(args.comp, args.layout), args.configs):
        print(path)


def cmd_folds(args, ws: Workspace) -> None:
    from foldwise.data.folds import check_class_sizes, make_folds, write_folds
    from foldwise.data.formats import load_competition

    comp = load_competition(args.comp, args.layout)
    groups, extra = None, {"duplicates": {"checked": False}}
    if not args.no_dedup:
        from foldwise.data.leakage import find_duplicates, group_ids

        check_class_sizes(comp, args.k)  # fail before decoding anything
        report = find_duplicates(comp, ws.cache_dir(comp.name), threshold=args.dup_threshold)
        print(report.summary())
        for line in report.examples(comp, 3):
            print(f"  {line}")
        if report.train_test_pairs:
            print(
                f"warning: {len(report.train_test_pairs)} test image(s) look like training images (examples above): "
                "the models have as good as seen them, so the test score can beat the validation score"
            )
        groups, extra = group_ids(report, len(comp.train_ids)), {"duplicates": report.counts()}
    df = make_folds(comp, k=args.k, seed=args.seed, groups=groups)
    path = ws.folds_csv(comp.name)
    changed = write_folds(df, path, k=args.k, seed=args.seed, force=args.force, extra=extra)
    sizes = df["fold"].value_counts().sort_index().tolist()
    grouped = f", {(df['group'].value_counts() > 1).sum()} duplicate group(s) kept whole" if "group" in df else ""
    print(
        f"{'wrote' if changed else 'unchanged'} {path}: {len(df)} images, {len(comp.classes)} classes, "
        f"k={args.k} (fold sizes {sizes}), seed {args.seed}{grouped}"
    )


def cmd_train(args, ws: Workspace) -> None:
    from foldwise.config import load_recipe
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import claim, fold_numbers, plan_run

    comp = load_competition(args.comp, args.layout)
    for config in args.config:
        recipe = load_recipe(config, args.set)
        for fold in [None] if args.full else fold_numbers(ws, comp, args.fold):
            plan = plan_run(comp, recipe, fold, ws)
            with claim(plan):
                status = plan.status(args.force)
                if status != "done":
                    from foldwise.training.train import carry_out  # torch + timm load only when there is work

                    carry_out(plan, status, force=args.force)
            print(f"done: {plan.run_dir}")


def cmd_blend(args, ws: Workspace) -> None:
    from foldwise.blending.blend import compare, load_oof, write_blend
    from foldwise.config import load_recipe
    from foldwise.data.formats import load_competition
    from foldwise.reporting.candidates import candidate_table
    from foldwise.reporting.report import write_report

    comp = load_competition(args.comp, args.layout)
    names = [load_recipe(e).name if e.endswith((".yaml", ".yml")) else e for e in args.experiments]
    oofs = [load_oof(ws.comp_dir(comp.name) / exp) for exp in names]
    result = compare(oofs, metric=args.metric, seed=args.seed)
    write_blend(result, list(comp.classes), ws.blend_dir(comp.name), metric=args.metric, seed=args.seed)
    report = write_report(ws, comp)
    header, body = candidate_table(result.rows)
    print(format_table(header, body))
    print(f"chosen: {result.fitted.method} of {', '.join(result.fitted.models)}; report: {report} (+ report.html)")


def cmd_report(args, ws: Workspace) -> None:
    from foldwise.data.formats import load_competition
    from foldwise.reporting.report import write_report

    print(f"wrote {write_report(ws, load_competition(args.comp, args.layout))} (+ report.html)")


def format_table(header: list[str], body: list[list]) -> str:
    """A plain-text table with aligned columns for the terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def cmd_submit(args, ws: Workspace) -> None:
    from foldwise.blending.submit import make_submission
    from foldwise.data.competition import write_solution
    from foldwise.data.formats import load_competition

    comp = load_competition(args.comp, args.layout)
    path, info = make_submission(comp, ws)
    sources = "; ".join(f"{k}: {v}" for k, v in info["sources"].items())
    print(f"wrote {path}: {info['rows']} rows, {info['method']} of {', '.join(info['models'])} ({sources})")
    key = write_solution(comp, ws.comp_dir(comp.name) / "solution.csv")  # labeled held-out split (CIFAR test, ...)
    if key is not None:
        print(f"wrote {key}: the labels of the test split that shipped labeled; `foldwise score` it")


def cmd_score(args, ws: Workspace) -> None:
    from foldwise.blending.submit import score_submission

    result = score_submission(Path(args.submission), Path(args.solution))
    print(f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['rows']})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foldwise", description=__doc__)
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="directory holding folds/ and output/ (default: .)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_training_commands(sub)
    add_blending_commands(sub)
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
    p.add_argument("name", choices=["digits", "fashion-mnist"])
    p.add_argument("out", nargs="?", help="output directory (default: input/<name>)")
    p.add_argument("--source", type=Path, help="fashion-mnist: directory with the IDX files")
    p.set_defaults(func=cmd_demo)

    p = with_comp(sub.add_parser("describe", help="print the detected layout, classes, counts, test set, sizes"))
    p.set_defaults(func=cmd_describe)

    p = with_comp(sub.add_parser("recipes", help="print the recipes submit.sh trains by default for this data"))
    p.add_argument(
        "--configs",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "configs",
        help="directory of recipe files (default: the repository's configs/)",
    )
    p.set_defaults(func=cmd_recipes)

    p = with_comp(sub.add_parser("folds", help="stratified, duplicate-aware k-fold split -> folds/<comp>.csv"))
    p.add_argument("--k", type=int, default=5, help="number of folds; fold 0 is the 1/k holdout (default 5)")
    p.add_argument("--seed", type=int, default=42, help="split seed, recorded in folds/<comp>.json")
    p.add_argument("--force", action="store_true", help="replace existing folds that differ")
    p.add_argument("--no-dedup", action="store_true", help="skip the duplicate search (plain StratifiedKFold)")
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
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a recipe key")
    p.add_argument("--force", action="store_true", help="retrain even when finished artifacts exist")
    p.set_defaults(func=cmd_train)


def add_blending_commands(sub) -> None:
    """blend, report, submit, score."""
    p = with_comp(sub.add_parser("blend", help="compare ensembles on OOF logits -> output/<comp>/blend/"))
    p.add_argument("experiments", nargs="+", help="experiment names under output/<comp>/, or their recipe files")
    p.add_argument("--metric", default="accuracy", choices=["accuracy", "log_loss"], help="what the blend optimizes")
    p.add_argument("--seed", type=int, default=0, help="seed of the nested-CV splits and bootstrap")
    p.set_defaults(func=cmd_blend)

    p = with_comp(sub.add_parser("report", help="rebuild output/<comp>/blend/report.md + report.html from artifacts"))
    p.set_defaults(func=cmd_report)

    p = with_comp(sub.add_parser("submit", help="blend.json + test logits -> output/<comp>/submission.csv"))
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("score", help="accuracy of a submission against a solution key")
    p.add_argument("submission")
    p.add_argument("solution")
    p.set_defaults(func=cmd_score)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    quiet_rank = os.environ.get("RANK", "0") != "0"  # under torchrun only rank 0 logs progress
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet_rank else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args, Workspace(args.root))
    except FoldwiseError as e:
        print(f"foldwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
