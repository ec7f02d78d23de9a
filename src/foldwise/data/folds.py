"""Stratified (or group-aware) k-fold assignment, and reading/writing/validating the folds CSV (the stage contract).

Duplicate images must not sit on both sides of a split, or validation scores are inflated. Finding them needs the
pixels (foldwise.data.leakage); this module only takes the result: a group label per training row. With real groups the
folds come from StratifiedGroupKFold and the csv gains a `group` column; without, the csv stays id,label,fold.

Repeated k-fold (`repeats` > 1, for small competitions): repeat r's split (seed + r) is the column `fold_r` beside
`fold` (repeat 0). Runs number their folds globally, r * k + fold, so fold 7 of k=5 is repeat 1's fold 2.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from foldwise.data.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_text_atomic


def assign_folds(labels: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index per row from sklearn's StratifiedKFold; with k=5 fold 0 is the 80/20 holdout.

    With `groups`, StratifiedGroupKFold instead: every group inside one fold, classes as balanced as groups allow.
    """
    labels = np.asarray(labels)
    if k < 2:
        raise FoldwiseError(f"k={k}: need at least 2 folds.")
    folds = np.full(len(labels), -1, dtype=np.int64)
    kind = StratifiedKFold if groups is None else StratifiedGroupKFold
    splitter = kind(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[valid] = fold
    return folds


def dense_groups(groups) -> np.ndarray:
    """Group labels renumbered 0, 1, ... in order of each group's first row."""
    _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]


def check_class_sizes(comp: Competition, k: int, groups: np.ndarray | None = None) -> None:
    """Every class needs at least k images (k duplicate groups, when grouped) so that it appears in every fold."""
    labels = np.asarray(comp.train_labels)
    if groups is None:
        counts = np.bincount(labels, minlength=len(comp.classes))
    else:  # a group can hold several classes (duplicates with conflicting labels); it counts once for each
        pairs = np.unique(np.stack([labels, dense_groups(groups)]), axis=1)
        counts = np.bincount(pairs[0], minlength=len(comp.classes))
    small = [(comp.classes[i], int(n)) for i, n in enumerate(counts) if n < k]
    if small:
        shown = ", ".join(f"{name!r} has {n}" for name, n in small[:10])
        fewest = min(n for _, n in small)
        fewer_folds = f", or use fewer folds (--k {fewest})" if fewest >= 2 else ""
        what = "images" if groups is None else "distinct images (duplicates count once)"
        raise FoldwiseError(
            f"{comp.root}: {len(small)} class(es) have fewer than k={k} {what} ({shown}). "
            f"Add images, merge or drop those classes{fewer_folds}."
        )


MAX_RUN_FOLDS = 98  # repeats * k: a run's seed holds its fold in two digits, 99 being the full retrain


def repeat_columns(df: pd.DataFrame) -> list[str]:
    """The split columns in repeat order: `fold`, then `fold_1`, `fold_2`, ... (repeated k-fold)."""
    extra = sorted((c for c in df.columns if re.fullmatch(r"fold_\d+", c)), key=lambda c: int(c[5:]))
    return ["fold", *extra]


def split_of(df: pd.DataFrame, fold: int) -> tuple[str, int, int]:
    """A run's global fold number -> (column, fold within that repeat, repeat): r * k + f is repeat r's fold f."""
    columns = repeat_columns(df)
    if len(columns) == 1:
        return "fold", fold, 0  # a single split keeps its own fold numbers (a competition's folds may start at 1)
    repeat, local = divmod(fold, int(df["fold"].nunique()))
    return columns[repeat], local, repeat


def make_folds(comp: Competition, k: int = 5, seed: int = 42, groups=None, repeats: int = 1) -> pd.DataFrame:
    """The folds table (id, label, fold[, fold_1 ...][, group]) for a competition, validated.

    `groups`: a label per training row (e.g. foldwise.data.leakage.group_ids); rows sharing one stay in one fold. When
    every row is its own group, or None, the folds are StratifiedKFold's and there is no group column. `repeats` > 1
    adds repeat r's split, seeded seed + r, as column fold_r.
    """
    if repeats < 1 or repeats * k > MAX_RUN_FOLDS:
        raise FoldwiseError(f"--repeats {repeats} with k={k}: give 1 to {MAX_RUN_FOLDS // k} repeats of {k} folds.")
    labels = np.asarray(comp.train_labels)
    groups = merged_groups(groups, comp.train_groups)
    if groups is not None:
        if len(groups) != len(labels):
            raise FoldwiseError(f"{comp.root}: {len(groups)} group labels for {len(labels)} training images.")
        if len(np.unique(groups)) == len(labels):
            groups = None  # no duplicates: the plain split, byte-identical to a run without groups
    check_class_sizes(comp, k, groups)
    df = pd.DataFrame({"id": comp.train_ids, "label": [comp.classes[i] for i in labels]})
    df["fold"] = assign_folds(labels, k, seed, groups)
    for r in range(1, repeats):
        df[f"fold_{r}"] = assign_folds(labels, k, seed + r, groups)
    if groups is not None:
        df["group"] = dense_groups(groups)
    try:
        validate_folds(df, comp, source=Path("<new folds>"))
    except FoldwiseError as e:
        if groups is None:
            raise
        raise FoldwiseError(f"{e} Groups constrain the split: try another --seed or fewer folds.") from e
    return df


def merged_groups(duplicates, named) -> np.ndarray | None:
    """One group per row from duplicate groups and the competition's own groups (group_column): rows linked by
    either stay in one fold (connected components, so a duplicate pair across two patients joins them)."""
    parts = [dense_groups(g) for g in (duplicates, named) if g is not None and len(g)]
    if len(parts) < 2:
        return parts[0] if parts else None
    n, first, second = len(parts[0]), parts[0], parts[1]
    nodes = n + first.max() + 1 + second.max() + 1
    rows = np.r_[np.arange(n), np.arange(n)]
    links = np.r_[n + first, n + first.max() + 1 + second]
    graph = coo_matrix((np.ones(2 * n, dtype=np.int8), (rows, links)), shape=(nodes, nodes))
    return dense_groups(connected_components(graph, directed=False)[1][:n])


def folds_csv_text(df: pd.DataFrame) -> str:
    """The exact bytes written for a folds table (same table -> same bytes); `group` only when the table has it."""
    buf = io.StringIO()
    df[["id", "label", *repeat_columns(df)] + (["group"] if "group" in df.columns else [])].to_csv(
        buf, index=False, lineterminator="\n"
    )
    return buf.getvalue()


def folds_meta(df: pd.DataFrame, k: int, seed: int, extra: dict | None = None) -> dict:
    """The JSON sidecar: k, seed, method, rows (and duplicate groups), plus `extra` (e.g. the duplicate search)."""
    meta = {"k": k, "seed": seed, "method": "StratifiedKFold(shuffle=True)", "rows": len(df)}
    if len(repeat_columns(df)) > 1:
        meta["repeats"] = len(repeat_columns(df))
        meta["repeat_seeds"] = [seed + r for r in range(meta["repeats"])]
    if "group" in df.columns:
        sizes = df["group"].value_counts()
        meta["method"] = "StratifiedGroupKFold(shuffle=True)"
        meta["duplicate_groups"] = int((sizes > 1).sum())
    return {**meta, **(extra or {})}


def write_folds(
    df: pd.DataFrame, path: Path, k: int, seed: int, force: bool = False, extra: dict | None = None
) -> bool:
    """Write folds CSV + a JSON sidecar (k, seed, method, `extra`); refuse to replace different folds unless `force`.

    Returns True when the csv was (re)written, False when identical folds were already there (the sidecar is
    still brought up to date, e.g. with a new duplicate search's counts).
    """
    text = folds_csv_text(df)
    sidecar, meta_text = path.with_suffix(".json"), json.dumps(folds_meta(df, k, seed, extra), indent=2) + "\n"
    if path.exists():
        if path.read_text() == text:
            if not sidecar.exists() or sidecar.read_text() != meta_text:
                write_text_atomic(sidecar, meta_text)
            return False
        if not force:
            raise FoldwiseError(
                f"{path}: already exists with different folds (other seed, k, data or duplicate groups). Models "
                "trained on it would no longer match; pass --force to replace it (and retrain with --force)."
            )
    write_text_atomic(path, text)
    write_text_atomic(sidecar, meta_text)
    return True


def read_folds(path: Path, comp: Competition | None = None) -> pd.DataFrame:
    """Read and validate a folds CSV (against the competition when given)."""
    if not path.exists():
        raise FoldwiseError(f"{path}: no folds yet; run `foldwise folds input/<comp>` first.")
    df = pd.read_csv(path, dtype={"id": str, "label": str, "fold": np.int64, "group": np.int64}, keep_default_na=False)
    if comp is not None:
        validate_folds(df, comp, source=path)
    return df


def validate_folds(df: pd.DataFrame, comp: Competition, source: Path) -> None:
    """Every training id exactly once, labels as in the data, every class in every fold, every group in one fold."""
    if list(df.columns[:3]) != ["id", "label", "fold"]:
        raise FoldwiseError(f"{source}: columns must start with id,label,fold (found {list(df.columns)}).")
    dup = df["id"][df["id"].duplicated()].tolist()
    if dup:
        raise FoldwiseError(f"{source}: ids listed more than once: {dup[:5]}.")
    expected = dict(zip(comp.train_ids, (comp.classes[i] for i in comp.train_labels)))
    missing = sorted(set(expected) - set(df["id"]))
    extra = sorted(set(df["id"]) - set(expected))
    if missing or extra:
        raise FoldwiseError(
            f"{source}: does not match {comp.root} ({len(missing)} training ids missing, e.g. {missing[:3]}; "
            f"{len(extra)} unknown ids, e.g. {extra[:3]}). The data changed: rerun `foldwise folds --force`."
        )
    wrong = df[df["label"] != df["id"].map(expected)]
    if len(wrong):
        raise FoldwiseError(f"{source}: labels differ from the data for ids {wrong['id'].tolist()[:5]}.")
    columns = repeat_columns(df)
    if columns[1:] != [f"fold_{r}" for r in range(1, len(columns))]:
        raise FoldwiseError(f"{source}: repeat columns {columns[1:]} must be fold_1, fold_2, ... without gaps.")
    if len(columns) > 1 and set(df["fold"]) != set(range(df["fold"].nunique())):
        raise FoldwiseError(f"{source}: repeated k-fold numbers its folds 0 to k-1 in every repeat column.")
    for column in columns:
        if set(df[column]) != set(df["fold"]):
            raise FoldwiseError(
                f"{source}: {column} has folds {sorted(set(df[column]))}, `fold` has "
                f"{sorted(set(df['fold']))}; every repeat needs the same k. Rebuild the folds."
            )
        per_fold = df.groupby(column)["label"].nunique()
        short = per_fold[per_fold < len(comp.classes)]
        if len(short):
            where = "fold(s)" if column == "fold" else f"{column}'s fold(s)"
            raise FoldwiseError(f"{source}: {where} {short.index.tolist()} lack some classes; rebuild the folds.")
        if "group" in df.columns:
            spread = df.groupby("group")[column].nunique()
            split = spread[spread > 1].index.tolist()
            if split:
                raise FoldwiseError(
                    f"{source}: duplicate group(s) {split[:5]} span several folds of {column}, so duplicates would "
                    "leak between training and validation; rebuild the folds."
                )
