"""Test logits + blend.json -> submission.csv (validated, written atomically); scoring a submission against a key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from foldwise.blend import apply_method, softmax
from foldwise.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic
from foldwise.formats.csv_layout import read_csv
from foldwise.workspace import Workspace


def load_test_probs(exp_dir: Path, test_ids: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Test probabilities of one experiment: the full retrain when it exists, else the average over its folds."""
    full = exp_dir / "full" / "test.npz"
    files = [full] if full.exists() else sorted(exp_dir.glob("fold*/test.npz"))
    if not files:
        raise FoldwiseError(f"{exp_dir}: no full/test.npz or fold*/test.npz; train it first.")
    probs = []
    for f in files:
        data = np.load(f)
        if not np.array_equal(data["ids"], np.array(test_ids)):
            raise FoldwiseError(f"{f}: its test ids differ from the competition's; the test set changed. Retrain.")
        probs.append(softmax(data["logits"]))
    source = "full retrain" if files == [full] else f"average of {len(files)} fold models"
    return np.mean(probs, axis=0), source


def expected_frame(comp: Competition) -> pd.DataFrame:
    """The sample submission (or the default id,label frame when the competition ships none)."""
    fmt = comp.submission
    if fmt.sample_path is not None:
        return read_csv(fmt.sample_path)
    return pd.DataFrame({fmt.id_column: list(comp.test_ids), fmt.label_column: comp.classes[0]})


def validate_submission(df: pd.DataFrame, sample: pd.DataFrame, classes, where: str = "submission") -> None:
    """Same columns, same ids in the same order, one known class per row; raises FoldwiseError otherwise."""
    if list(df.columns) != list(sample.columns):
        raise FoldwiseError(f"{where}: columns {list(df.columns)} differ from the sample's {list(sample.columns)}.")
    id_col, label_col = sample.columns[0], sample.columns[1]
    got, want = df[id_col].astype(str).tolist(), sample[id_col].astype(str).tolist()
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise FoldwiseError(f"{where}: {len(missing)} id(s) missing (e.g. {missing[:3]}), "
                            f"{len(extra)} unexpected (e.g. {extra[:3]}).")  # fmt: skip
    if len(got) != len(want):
        raise FoldwiseError(f"{where}: {len(got)} rows but the sample has {len(want)} (duplicated ids?).")
    if got != want:
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise FoldwiseError(f"{where}: ids are not in the sample's order (row {first}: {got[first]!r}, "
                            f"expected {want[first]!r}).")  # fmt: skip
    unknown = sorted(set(df[label_col].astype(str)) - {str(c) for c in classes})
    if unknown:
        raise FoldwiseError(f"{where}: labels {unknown[:5]} are not classes of this competition.")


def make_submission(comp: Competition, ws: Workspace) -> tuple[Path, dict]:
    """Apply blend.json to the test logits, validate, and write output/<comp>/submission.csv atomically."""
    blend_path = ws.blend_dir(comp.name) / "blend.json"
    if not blend_path.exists():
        raise FoldwiseError(f"{blend_path}: missing; run `foldwise blend input/{comp.name} <exp> ...` first.")
    choice = json.loads(blend_path.read_text())
    if choice["classes"] != list(comp.classes):
        raise FoldwiseError(f"{blend_path}: made for other classes than {comp.root} has; rerun `foldwise blend`.")
    probs, sources = [], {}
    for exp in choice["models"]:
        p, sources[exp] = load_test_probs(ws.comp_dir(comp.name) / exp, comp.test_ids)
        probs.append(p)
    blended = apply_method(choice["method"], probs)
    fmt = comp.submission
    df = pd.DataFrame(
        {fmt.id_column: list(comp.test_ids), fmt.label_column: [comp.classes[i] for i in blended.argmax(1)]}
    )
    sample = expected_frame(comp)
    path = ws.submission_csv(comp.name)
    validate_submission(df, sample, comp.classes, where=str(path))
    write_atomic(path, lambda p: df.to_csv(p, index=False, lineterminator="\n"))
    return path, {"method": choice["method"], "models": choice["models"], "sources": sources, "rows": len(df)}


def score_submission(submission: Path, solution: Path) -> dict:
    """Accuracy of a submission against a solution key (both id,label; matched by id)."""
    sub, sol = read_csv(submission), read_csv(solution)
    for name, df in ((submission, sub), (solution, sol)):
        if len(df.columns) < 2:
            raise FoldwiseError(f"{name}: needs an id and a label column.")
    id_col, label_col = sol.columns[0], sol.columns[1]
    sub = sub.rename(columns={sub.columns[0]: id_col, sub.columns[1]: label_col})
    missing = sorted(set(sol[id_col]) - set(sub[id_col]))
    if missing or len(sub) != len(sol):
        raise FoldwiseError(f"{submission}: {len(missing)} ids of {solution} are missing (e.g. {missing[:3]}), "
                            f"{len(sub)} rows vs {len(sol)} expected.")  # fmt: skip
    merged = sol.merge(sub, on=id_col, suffixes=("_true", "_pred"))
    correct = merged[f"{label_col}_true"] == merged[f"{label_col}_pred"]
    return {"accuracy": float(correct.mean()), "rows": int(len(merged)), "correct": int(correct.sum())}
