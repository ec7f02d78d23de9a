"""Stratified k-fold assignment, and reading/writing/validating the folds CSV (the contract between stages)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from foldwise.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_text_atomic


def assign_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per row from sklearn's StratifiedKFold; with k=5 fold 0 is the 80/20 holdout."""
    labels = np.asarray(labels)
    if k < 2:
        raise FoldwiseError(f"k={k}: need at least 2 folds.")
    folds = np.full(len(labels), -1, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[valid] = fold
    return folds


def check_class_sizes(comp: Competition, k: int) -> None:
    """Every class needs at least k images so that it appears in every fold."""
    counts = np.bincount(np.asarray(comp.train_labels), minlength=len(comp.classes))
    small = [(comp.classes[i], int(n)) for i, n in enumerate(counts) if n < k]
    if small:
        shown = ", ".join(f"{name!r} has {n}" for name, n in small[:10])
        fewest = min(n for _, n in small)
        fewer_folds = f", or use fewer folds (--k {fewest})" if fewest >= 2 else ""
        raise FoldwiseError(
            f"{comp.root}: {len(small)} class(es) have fewer than k={k} images ({shown}). "
            f"Add images, merge or drop those classes{fewer_folds}."
        )


def make_folds(comp: Competition, k: int = 5, seed: int = 42) -> pd.DataFrame:
    """The folds table (id, label, fold) for a competition, validated."""
    check_class_sizes(comp, k)
    labels = np.asarray(comp.train_labels)
    df = pd.DataFrame({"id": comp.train_ids, "label": [comp.classes[i] for i in labels]})
    df["fold"] = assign_folds(labels, k, seed)
    validate_folds(df, comp, source=Path("<new folds>"))
    return df


def folds_csv_text(df: pd.DataFrame) -> str:
    """The exact bytes written for a folds table (same table -> same bytes)."""
    buf = io.StringIO()
    df[["id", "label", "fold"]].to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def write_folds(df: pd.DataFrame, path: Path, k: int, seed: int, force: bool = False) -> bool:
    """Write folds CSV + a JSON sidecar with k and seed; refuse to replace different folds unless `force`.

    Returns True when the file was (re)written, False when identical folds were already there.
    """
    text = folds_csv_text(df)
    if path.exists():
        if path.read_text() == text:
            return False
        if not force:
            raise FoldwiseError(
                f"{path}: already exists with different folds (other seed, k or data). Models trained on it "
                "would no longer match; pass --force to replace it (and retrain with --force)."
            )
    write_text_atomic(path, text)
    meta = {"k": k, "seed": seed, "method": "StratifiedKFold(shuffle=True)", "rows": len(df)}
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return True


def read_folds(path: Path, comp: Competition | None = None) -> pd.DataFrame:
    """Read and validate a folds CSV (against the competition when given)."""
    if not path.exists():
        raise FoldwiseError(f"{path}: no folds yet; run `foldwise folds input/<comp>` first.")
    df = pd.read_csv(path, dtype={"id": str, "label": str, "fold": np.int64}, keep_default_na=False)
    if comp is not None:
        validate_folds(df, comp, source=path)
    return df


def validate_folds(df: pd.DataFrame, comp: Competition, source: Path) -> None:
    """Every training id exactly once, labels as in the data, every class present in every fold."""
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
    per_fold = df.groupby("fold")["label"].nunique()
    short = per_fold[per_fold < len(comp.classes)]
    if len(short):
        raise FoldwiseError(f"{source}: fold(s) {short.index.tolist()} lack some classes; rebuild the folds.")
