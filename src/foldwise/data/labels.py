"""Which columns of train.csv hold the ids and the labels: named in foldwise.yaml, recognised by name, a one-hot
block (one 0/1 column per class, exactly one 1 per row), or the only other column. Every choice is said, in
`foldwise describe` (the competition's notes) and in the log; a choice that cannot be made is an error that says
how to make it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from foldwise.data.csvfiles import ID_COLUMNS, LABEL_COLUMNS
from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)
ONE_HOT_VALUES = {"0", "1", "0.0", "1.0"}


@dataclass(frozen=True)
class TrainLabels:
    """The ids and class names of train.csv's rows, and how they were found."""

    ids: list[str]
    labels: list[str]  # class name per row
    how: str  # e.g. "id column 'id' (by name), labels one-hot over 10 columns c0..c9"


def named(columns: list[str], wanted: str | None, names: tuple[str, ...]) -> tuple[str | None, str]:
    """(the column, how it was found): as named in foldwise.yaml, else by a known name (any case), else None."""
    if wanted is not None:
        return (wanted if wanted in columns else None), "from foldwise.yaml"
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None), "by name"


def one_hot(df: pd.DataFrame, columns: list[str]) -> bool:
    """At least two columns, every value 0 or 1."""
    return len(columns) >= 2 and all(set(df[c].str.strip()) <= ONE_HOT_VALUES for c in columns)


def one_hot_labels(df: pd.DataFrame, id_col: str, columns: list[str], path: Path) -> list[str]:
    """The column holding the 1 of each row; a row without exactly one 1 is an error naming it."""
    ones = df[columns].apply(lambda col: col.str.strip().isin({"1", "1.0"})).to_numpy()
    counts = ones.sum(axis=1)
    bad = [i for i, n in enumerate(counts) if n != 1]
    if bad:
        row = bad[0]
        raise FoldwiseError(
            f"{path}: row {row + 2} (id {df[id_col].iloc[row]!r}) has {counts[row]} ones among the one-hot columns "
            f"{', '.join(columns[:5])}{', ...' if len(columns) > 5 else ''}; each row needs exactly one 1 "
            f"({len(bad)} row(s) do not). Fix them, or name the label column in foldwise.yaml (label_column: ...)."
        )
    return [columns[i] for i in ones.argmax(axis=1)]


def train_labels(df: pd.DataFrame, path: Path, options: dict[str, str]) -> TrainLabels:
    """Ids and labels of train.csv (see the module docstring)."""
    columns = list(df.columns)
    id_col, id_how = named(columns, options.get("id_column"), ID_COLUMNS)
    if id_col is None and "id_column" in options:
        raise FoldwiseError(
            f"{path}: has no column {options['id_column']!r} (foldwise.yaml id_column); its columns are {columns}."
        )
    if id_col is None:
        id_col, id_how = columns[0], "guessed: the first column"
    rest = [c for c in columns if c != id_col]
    label_col, label_how = named(rest, options.get("label_column"), LABEL_COLUMNS)
    if label_col is None and "label_column" in options:
        raise FoldwiseError(
            f"{path}: has no column {options['label_column']!r} (foldwise.yaml label_column); its "
            f"columns are {columns}."
        )
    ids = df[id_col].tolist()
    if label_col is not None:
        labels, how = [v.strip() for v in df[label_col]], f"label column {label_col!r} ({label_how})"
    elif one_hot(df, rest):
        labels, how = one_hot_labels(df, id_col, rest, path), f"labels one-hot over {len(rest)} columns ({rest[0]}..)"
    elif len(rest) == 1:
        labels, how = [v.strip() for v in df[rest[0]]], f"label column {rest[0]!r} (guessed: the only other column)"
    else:
        raise FoldwiseError(
            f"{path}: cannot tell which of the columns {rest} holds the labels. Name it in "
            f"{path.parent / 'foldwise.yaml'}: `label_column: <name>` (or rename it to 'label')."
        )
    ignored = [c for c in rest if c != label_col and not how.startswith("labels one-hot")]
    how = f"id column {id_col!r} ({id_how}), {how}" + (
        f"; other columns ignored: {', '.join(ignored)}" if ignored else ""
    )
    if "guessed" in how:
        log.warning("%s: %s; name them in foldwise.yaml (id_column, label_column) if that is wrong", path, how)
    return TrainLabels(ids, labels, how)
