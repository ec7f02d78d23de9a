"""Kaggle csv layout: train.csv (id,label) + train/ + test/ + sample_submission.csv (+ solution.csv key)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from foldwise.data.competition import Competition, SubmissionFormat, list_images, sort_class_names
from foldwise.errors import FoldwiseError

ID_COLUMNS = ("id", "image_id", "image", "image_name", "filename", "file", "name")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")
TRAIN_DIRS = ("train", "train_images", "images")  # where Kaggle competitions put the labeled images
TEST_DIRS = ("test", "test_images")


def image_dir(root: Path, names: tuple[str, ...]) -> Path:
    """The first existing image folder among `names` (the first name when none exists, for the error message)."""
    return next((root / n for n in names if (root / n).is_dir()), root / names[0])


def matches(root: Path) -> bool:
    """True when train.csv is present."""
    return (root / "train.csv").is_file()


def _pick(columns: list[str], preferred: tuple[str, ...], fallback: int, path: Path, what: str) -> str:
    lowered = {c.lower(): c for c in columns}
    for name in preferred:
        if name in lowered:
            return lowered[name]
    if len(columns) <= fallback:
        raise FoldwiseError(f"{path}: cannot find the {what} column among {columns}; name it {preferred[0]!r}.")
    return columns[fallback]


def read_csv(path: Path) -> pd.DataFrame:
    """Read a csv with every column as text (ids like 007 must stay 007)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise FoldwiseError(f"{path}: not a readable csv ({e}).") from e


def _index_images(directory: Path, csv_path: Path) -> dict[str, Path]:
    """Map both 'name.ext' and 'name' to the file, scanning the directory once; non-image files are skipped."""
    if not directory.is_dir():
        raise FoldwiseError(f"{directory}: missing; {csv_path.name} refers to images that should be there.")
    index: dict[str, Path] = {}
    for path in list_images(directory):  # non-image files are skipped with a warning
        index[path.name] = path
        index.setdefault(path.stem, path)
    return index


def _resolve(ids: list[str], directory: Path, csv_path: Path) -> list[Path]:
    """Image file of every id; every image file in the directory must be listed exactly once."""
    index = _index_images(directory, csv_path)
    duplicated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicated:
        raise FoldwiseError(
            f"{csv_path}: duplicate ids {duplicated[:5]}; every id must appear once. Remove the copies."
        )
    missing = [i for i in ids if i not in index]
    if missing:
        raise FoldwiseError(
            f"{csv_path}: {len(missing)} id(s) have no image in {directory}/ (e.g. {missing[:5]}). "
            "Add the images or remove those rows."
        )
    paths = [index[i] for i in ids]
    unlisted = sorted({p.name for p in index.values()} - {p.name for p in paths})
    if unlisted:
        raise FoldwiseError(
            f"{directory}: {len(unlisted)} image(s) have no row in {csv_path.name} (e.g. {unlisted[:5]}). "
            f"Add rows for them or move them out of {directory.name}/."
        )
    check_not_empty_files(paths)
    return paths


def check_not_empty_files(paths: list[Path]) -> None:
    """Zero-byte files are failed downloads or copies: name them before any decoding starts."""
    empty = [p for p in paths if p.stat().st_size == 0]
    if empty:
        shown = ", ".join(str(p) for p in empty[:5])
        raise FoldwiseError(
            f"{len(empty)} image file(s) are empty (0 bytes): {shown}. Download them again or remove them."
        )


def read_sample_submission(path: Path, classes: tuple[str, ...]) -> tuple[SubmissionFormat, list[str]]:
    """Submission format and test ids (in order): `id,label`, or `id,<one probability column per class>`.

    Probability columns are matched to classes by name when they are the class names, else by position in the
    sorted class order (e.g. the Tiny ImageNet seed's `id,class_000,...,class_099`).
    """
    df = read_csv(path)
    columns = list(df.columns)
    id_col = _pick(columns, ID_COLUMNS, 0, path, "id")
    rest = [c for c in columns if c != id_col]
    if len(rest) == 1:
        return SubmissionFormat(id_column=id_col, label_column=rest[0], sample_path=path), df[id_col].tolist()
    if set(rest) == set(classes):
        index = [classes.index(c) for c in rest]
    elif len(rest) == len(classes):
        index = list(range(len(classes)))
    elif set(rest) & set(classes):
        unknown = sorted(set(classes) - set(rest))
        raise FoldwiseError(
            f"{path}: its probability columns name the classes, but training labels {unknown[:5]} are not among them. "
            "Fix those labels in train.csv (typo? extra class?) or add the columns."
        )
    else:
        raise FoldwiseError(
            f"{path}: {len(rest)} columns besides {id_col!r}; expected 1 (a label) or one probability column per "
            f"class ({len(classes)} classes: {', '.join(classes[:5])}...). Fix the sample or the training labels."
        )
    fmt = SubmissionFormat(id_column=id_col, label_column="", sample_path=path,
                           probability_columns=tuple(rest), probability_classes=tuple(index))  # fmt: skip
    return fmt, df[id_col].tolist()


def test_paths_for_ids(ids: list[str], test_dir: Path, sample: Path) -> list[Path]:
    """Image path of every test id listed in the sample submission."""
    return _resolve(ids, test_dir, sample)


def read(root: Path) -> Competition:
    """Read train.csv and its images, and the test ids from sample_submission.csv (or test/ when absent)."""
    train_csv = root / "train.csv"
    df = read_csv(train_csv)
    columns = list(df.columns)
    id_col = _pick(columns, ID_COLUMNS, 0, train_csv, "id")
    label_col = _pick([c for c in columns if c != id_col], LABEL_COLUMNS, 0, train_csv, "label")
    ids, names = df[id_col].tolist(), [n.strip() for n in df[label_col].tolist()]
    if not ids:
        raise FoldwiseError(f"{train_csv}: has no rows.")
    blank = [i for i, n in zip(ids, names) if not n]
    if blank:
        raise FoldwiseError(f"{train_csv}: {len(blank)} row(s) have no {label_col!r} (e.g. ids {blank[:5]}). "
                            "Label them or remove the rows.")  # fmt: skip
    classes = sort_class_names(names)
    index = {c: i for i, c in enumerate(classes)}
    train_images = _resolve(ids, image_dir(root, TRAIN_DIRS), train_csv)
    sample = root / "sample_submission.csv"
    if sample.exists():
        fmt, test_ids = read_sample_submission(sample, classes)
        test_images = test_paths_for_ids(test_ids, image_dir(root, TEST_DIRS), sample)
    else:
        files = sorted({p for p in _index_images(image_dir(root, TEST_DIRS), train_csv).values()})
        fmt, test_ids, test_images = SubmissionFormat(), [p.stem for p in files], files
    solution = root / "solution.csv"
    return Competition(
        name=root.name, root=root, layout="csv", classes=classes,
        train_ids=tuple(ids), train_labels=tuple(index[n] for n in names), train_images=tuple(train_images),
        test_ids=tuple(test_ids), test_images=tuple(test_images), submission=fmt,
        solution_path=solution if solution.exists() else None,
    )  # fmt: skip
