"""One small reader per on-disk layout; each returns a Competition."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from foldwise.data.competition import Competition
from foldwise.data.csvfiles import submission_kind
from foldwise.data.formats import cifar, csv_layout, folder, idx, tiny_imagenet
from foldwise.data.options import competition_options
from foldwise.errors import FoldwiseError
from foldwise.metrics import metric

LAYOUTS = {  # name -> reader; `--layout NAME` forces one
    "csv": csv_layout.read,
    "folder": folder.read,
    "cifar": cifar.read,
    "tiny-imagenet": tiny_imagenet.read,
    "idx": idx.read,
}

# Detection order: the layouts with unambiguous marker files first. Official Tiny ImageNet also has
# train/<wnid>/ folders, so it must be tried before the folder layout; csv keeps its place before folder.
DETECTION_ORDER = (
    ("tiny-imagenet", tiny_imagenet.matches),  # wnids.txt + train/
    ("cifar", cifar.matches),  # batches.meta / data_batch_1, or meta + train + test pickles
    ("idx", idx.matches),  # train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]
    ("csv", csv_layout.matches),  # train.csv
    ("folder", folder.matches),  # train/<class>/ or seg_train/seg_train/<class>/
)


def detect_layout(root: Path) -> str:
    """Name of the first layout whose marker files are present under `root`."""
    for name, matches in DETECTION_ORDER:
        if matches(root):
            return name
    found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "nothing"
    raise FoldwiseError(
        f"{root}: no supported layout found (it holds: {found}). Expected one of: train.csv + train/ + test/ "
        "(+ sample_submission.csv); train/<class>/* + test/*; Intel seg_train/seg_train/<class>/; "
        "tiny-imagenet-200/ (wnids.txt); CIFAR python pickles; MNIST IDX files. See README 'Input layouts'."
    )


def load_competition(
    root: str | Path, layout: str | None = None, metric_override: str | None = None, group_column: str | None = None
) -> Competition:
    """Detect the layout under `root` (or use the named one) and read it with foldwise.yaml's options; `metric_override`
    and `group_column` (the command line's --metric, --group-column) take precedence over the file's."""
    root = Path(root)
    if not root.is_dir():
        raise FoldwiseError(f"{root}: no such competition directory. Put the competition's files in input/<name>/.")
    name = layout or detect_layout(root)
    if name not in LAYOUTS:
        raise FoldwiseError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}.")
    options = competition_options(root)
    if group_column:
        options["group_column"] = group_column
    comp = LAYOUTS[name](root, options)
    if "group_column" in options and comp.layout != "csv":
        raise FoldwiseError(
            f"{root / 'foldwise.yaml'}: group_column names a column of train.csv, which the "
            f"{comp.layout} layout does not have; remove the line."
        )
    return with_metric(comp, metric_override or options.get("metric", "accuracy"))


def with_metric(comp: Competition, name: str) -> Competition:
    """The competition scored by metric `name`, its submission's kind chosen for that metric and its sample."""
    chosen = metric(name)
    if chosen.family == "roc_auc" and len(comp.classes) != 2 and comp.submission.kind == "positive_probability":
        raise FoldwiseError("roc_auc with a single-probability submission needs exactly two classes.")
    return replace(comp, metric=chosen.name, submission=submission_kind(comp.submission, comp.classes, chosen))
