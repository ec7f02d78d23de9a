"""Kaggle csv layout: train.csv (id,label) + train/ + test/ + sample_submission.csv (+ solution.csv key)."""

from __future__ import annotations

from pathlib import Path

from foldwise.data.competition import Competition, SubmissionFormat, shipped_solution, sort_class_names
from foldwise.data.csvfiles import read_csv, read_sample_submission
from foldwise.data.ids import index_images, nfc, resolve_ids
from foldwise.data.images import unwrap
from foldwise.data.labels import train_labels
from foldwise.data.options import competition_options
from foldwise.errors import FoldwiseError

TRAIN_DIRS = ("train", "train_images", "images")  # where Kaggle competitions put the labeled images
TEST_DIRS = ("test", "test_images")


def image_dir(root: Path, names: tuple[str, ...]) -> Path:
    """The first existing image folder among `names` (unwrapped when the archive nested it in a same-named folder;
    the first name when none exists, for the error message)."""
    return next((unwrap(root / n) for n in names if (root / n).is_dir()), root / names[0])


def matches(root: Path) -> bool:
    """True when train.csv is present."""
    return (root / "train.csv").is_file()


def read(root: Path, options: dict[str, str] | None = None) -> Competition:
    """Read train.csv and its images, and the test ids from sample_submission.csv (or test/ when absent)."""
    train_csv = root / "train.csv"
    options = competition_options(root) if options is None else options
    found = train_labels(read_csv(train_csv), train_csv, options)
    ids, names = found.ids, found.labels
    if not ids:
        raise FoldwiseError(f"{train_csv}: has no rows.")
    blank = [i for i, n in zip(ids, names) if not n]
    if blank:
        raise FoldwiseError(
            f"{train_csv}: {len(blank)} row(s) have no label (e.g. ids {blank[:5]}). Label them or remove the rows."
        )
    classes = sort_class_names(names)
    index = {c: i for i, c in enumerate(classes)}
    train_images = resolve_ids(ids, image_dir(root, TRAIN_DIRS), train_csv, root)
    sample = root / "sample_submission.csv"
    if sample.exists():
        fmt, test_ids = read_sample_submission(sample, classes)
        test_images = resolve_ids(test_ids, image_dir(root, TEST_DIRS), sample, root)
    else:
        files = sorted({p for p in index_images(image_dir(root, TEST_DIRS), train_csv).values()})
        fmt, test_ids, test_images = SubmissionFormat(), [nfc(p.stem) for p in files], files
    return Competition(
        name=root.name,
        root=root,
        layout="csv",
        classes=classes,
        train_ids=tuple(ids),
        train_labels=tuple(index[n] for n in names),
        train_images=tuple(train_images),
        test_ids=tuple(test_ids),
        test_images=tuple(test_images),
        submission=fmt,
        solution_path=shipped_solution(root),
        notes=(f"{train_csv.name}: {found.how}",),
        train_groups=tuple(found.groups or ()),
    )
