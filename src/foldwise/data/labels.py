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
    groups: list[str] | None = None  # the group column's value per row, when foldwise.yaml names one


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


def named_column(columns: list[str], options: dict[str, str], key: str, names: tuple[str, ...], path: Path):
    """(column, how found) for foldwise.yaml's `key`, else by name; a named column that is missing is an error."""
    column, how = named(columns, options.get(key), names)
    if column is None and key in options:
        raise FoldwiseError(f"{path}: has no column {options[key]!r} (foldwise.yaml {key}); its columns are {columns}.")
    return column, how


def find_labels(df: pd.DataFrame, rest: list[str], id_col: str, options: dict[str, str], path: Path):
    """(class name per row, how they were found) from the columns other than the id and group."""
    label_col, label_how = named_column(rest, options, "label_column", LABEL_COLUMNS, path)
    if label_col is not None:
        return [v.strip() for v in df[label_col]], f"label column {label_col!r} ({label_how})", label_col
    if one_hot(df, rest):
        return one_hot_labels(df, id_col, rest, path), f"labels one-hot over {len(rest)} columns ({rest[0]}..)", None
    if len(rest) == 1:
        return [v.strip() for v in df[rest[0]]], f"label column {rest[0]!r} (guessed: the only other column)", rest[0]
    raise FoldwiseError(
        f"{path}: cannot tell which of the columns {rest} holds the labels. Name it in "
        f"{path.parent / 'foldwise.yaml'}: `label_column: <name>` (or rename it to 'label')."
    )


def train_labels(df: pd.DataFrame, path: Path, options: dict[str, str]) -> TrainLabels:
    """Ids, labels (and groups) of train.csv (see the module docstring)."""
    columns = list(df.columns)
    id_col, id_how = named_column(columns, options, "id_column", ID_COLUMNS, path)
    if id_col is None:
        id_col, id_how = columns[0], "guessed: the first column"
    group_col = named_column(columns, options, "group_column", (), path)[0] if "group_column" in options else None
    rest = [c for c in columns if c not in (id_col, group_col)]
    labels, label_how, label_col = find_labels(df, rest, id_col, options, path)
    how = f"id column {id_col!r} ({id_how}), {label_how}"
    ignored = [c for c in rest if c != label_col] if label_col is not None else []
    if ignored:
        how += f"; other columns ignored: {', '.join(ignored)}"
    groups = None
    if group_col is not None:
        groups = [v.strip() for v in df[group_col]]
        how += f"; groups from {group_col!r} ({len(set(groups))} groups)"
    if "guessed" in how:
        log.warning("%s: %s; name them in foldwise.yaml (id_column, label_column) if that is wrong", path, how)
    return TrainLabels(df[id_col].tolist(), labels, how, groups)
