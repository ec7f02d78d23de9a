"""Kaggle csv files shared by the readers and the submission stage: reading them as text, finding the id and label
columns, and the submission format a sample_submission.csv asks for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from foldwise.data.competition import SubmissionFormat
from foldwise.errors import FoldwiseError
from foldwise.metrics import Metric

ID_COLUMNS = ("id", "image_id", "image", "image_name", "filename", "file", "name")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")


def read_csv(path: Path) -> pd.DataFrame:
    """Read a UTF-8 csv (a byte-order mark is dropped) with every column as text (ids like 007 must stay 007)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as e:
        raise FoldwiseError(
            f"{path}: empty; it needs a header row (e.g. id,label) and one row per image. Download it again."
        ) from e
    except UnicodeDecodeError as e:
        raise FoldwiseError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8.") from e
    except (pd.errors.ParserError, OSError) as e:
        problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FoldwiseError(f"{path}: not a readable csv ({problem}); check its quoting and column counts.") from e


def pick_column(columns: list[str], preferred: tuple[str, ...], fallback: int, path: Path, what: str) -> str:
    """The first column named like one of `preferred` (any case), else the `fallback`-th; an error when none."""
    lowered = {c.lower(): c for c in columns}
    for name in preferred:
        if name in lowered:
            return lowered[name]
    if len(columns) <= fallback:
        raise FoldwiseError(f"{path}: cannot find the {what} column among {columns}; name it {preferred[0]!r}.")
    return columns[fallback]


def read_sample_submission(path: Path, classes: tuple[str, ...]) -> tuple[SubmissionFormat, list[str]]:
    """Submission format and test ids (in order): `id,label`, or `id,<one probability column per class>`.

    Probability columns are matched to classes by name when they are the class names, else by position in the
    sorted class order (e.g. the Tiny ImageNet seed's `id,class_000,...,class_099`).
    """
    df = read_csv(path)
    columns = list(df.columns)
    id_col = pick_column(columns, ID_COLUMNS, 0, path, "id")
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
    fmt = SubmissionFormat(
        id_column=id_col,
        label_column="",
        sample_path=path,
        probability_columns=tuple(rest),
        probability_classes=tuple(index),
    )
    return fmt, df[id_col].tolist()


def submission_kind(fmt: SubmissionFormat, classes: tuple[str, ...], metric: Metric) -> SubmissionFormat:
    """What a one-column submission holds: top-k labels when the sample lists several per row (MAP@k), the positive
    class's probability for a binary competition scored by ROC-AUC or whose sample holds fractions, else a label."""
    if fmt.wants_probabilities:
        return replace(fmt, kind="probabilities")
    values = read_csv(fmt.sample_path)[fmt.label_column].tolist() if fmt.sample_path else []
    tokens = max((len(str(v).split()) for v in values), default=1)
    if tokens > 1 or (metric.family == "map_at_k" and not values):
        return replace(fmt, kind="top_k", k=tokens if tokens > 1 else metric.k)
    fractions = any(fraction(v) for v in values)
    if len(classes) == 2 and (metric.family == "roc_auc" or fractions):
        return replace(fmt, kind="positive_probability")
    return replace(fmt, kind="label")


def fraction(value: str) -> bool:
    """True for a number strictly between 0 and 1 (a probability, not a class id)."""
    try:
        return 0.0 < float(value) < 1.0
    except ValueError:
        return False
