"""The submission's shape, as the competition's sample asks for it: one label per image, one probability per class,
the positive class's probability (binary, e.g. ROC-AUC), or the top k labels space-separated (MAP@k); built from the
blend's probabilities and checked against the sample before it is written."""

from __future__ import annotations

import numpy as np
import pandas as pd

from foldwise.data.competition import Competition
from foldwise.data.csvfiles import read_csv
from foldwise.errors import FoldwiseError


def expected_frame(comp: Competition) -> pd.DataFrame:
    """The sample submission (or the default id,label frame when the competition ships none)."""
    fmt = comp.submission
    if fmt.sample_path is not None:
        return read_csv(fmt.sample_path)
    return pd.DataFrame({fmt.id_column: list(comp.test_ids), fmt.label_column: comp.classes[0]})


def top_k_labels(probs: np.ndarray, classes, k: int) -> list[str]:
    """The k most probable classes of each row, best first, space-separated."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [" ".join(classes[i] for i in row) for row in order]


def submission_frame(comp: Competition, probs: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    """Rows in test-id order in the submission's kind; `labels` (class indices) override the argmax when a fitted
    decision rule (a threshold, QWK cut points) chose them."""
    fmt = comp.submission
    frame = {fmt.id_column: list(comp.test_ids)}
    if fmt.kind == "probabilities":
        for column, k in zip(fmt.probability_columns, fmt.probability_classes):
            frame[column] = probs[:, k]
    elif fmt.kind == "positive_probability":
        frame[fmt.label_column] = probs[:, 1]
    elif fmt.kind == "top_k":
        frame[fmt.label_column] = top_k_labels(probs, comp.classes, fmt.k)
    else:
        chosen = probs.argmax(1) if labels is None else labels
        frame[fmt.label_column] = [comp.classes[i] for i in chosen]
    return pd.DataFrame(frame)


def validate_submission(
    df: pd.DataFrame, sample: pd.DataFrame, classes, where: str = "submission", kind: str = "label", k: int = 1
) -> None:
    """Same columns, same ids in the same order, and rows of the submission's `kind`: a known class, probabilities
    within [0, 1] (rows summing to 1 for one column per class), or k distinct known classes (top_k)."""
    if list(df.columns) != list(sample.columns):
        raise FoldwiseError(f"{where}: columns {list(df.columns)} differ from the sample's {list(sample.columns)}.")
    check_ids(df[sample.columns[0]].astype(str).tolist(), sample[sample.columns[0]].astype(str).tolist(), where)
    values = df[sample.columns[1:]]
    if kind in ("probabilities", "positive_probability"):
        numbers = values.to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all() or (numbers < 0).any() or (numbers > 1).any():
            raise FoldwiseError(f"{where}: probabilities must be finite and within [0, 1].")
        worst = float(np.abs(numbers.sum(axis=1) - 1).max()) if kind == "probabilities" else 0.0
        if worst > 1e-4:
            raise FoldwiseError(f"{where}: probability rows must sum to 1 (off by up to {worst:.2g}).")
        return
    known = {str(c) for c in classes}
    rows = [str(v).split() for v in values.iloc[:, 0]] if kind == "top_k" else [[str(v)] for v in values.iloc[:, 0]]
    unknown = sorted({label for row in rows for label in row} - known)
    if unknown:
        raise FoldwiseError(f"{where}: labels {unknown[:5]} are not classes of this competition.")
    want = k if kind == "top_k" else 1
    bad = [i for i, row in enumerate(rows) if len(row) != len(set(row)) or len(row) != min(want, len(known))]
    if bad:
        raise FoldwiseError(f"{where}: row {bad[0]} holds {rows[bad[0]]}; each row needs {want} distinct label(s).")


def check_ids(got: list[str], want: list[str], where: str) -> None:
    """The sample's ids, each once, in the sample's order."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise FoldwiseError(
            f"{where}: {len(missing)} id(s) missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})."
        )
    if len(got) != len(want):
        raise FoldwiseError(f"{where}: {len(got)} rows but the sample has {len(want)} (duplicated ids?).")
    if got != want:
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise FoldwiseError(
            f"{where}: ids are not in the sample's order (row {first}: {got[first]!r}, expected {want[first]!r})."
        )
