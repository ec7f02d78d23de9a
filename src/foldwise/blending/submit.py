"""Test logits + blend.json -> submission.csv (validated, written atomically); scoring a submission against a key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from foldwise.blending.blend import check_inputs_unchanged
from foldwise.blending.ensemble import FittedBlend
from foldwise.data.competition import Competition
from foldwise.data.csvfiles import read_csv
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic
from foldwise.workspace import Workspace


def read_test_logits(path: Path, test_ids: tuple[str, ...]) -> np.ndarray:
    """float64 logits of one run's test.npz, whose ids must be the competition's test ids in order."""
    data = np.load(path)
    if not np.array_equal(data["ids"], np.array(test_ids)):
        raise FoldwiseError(f"{path}: its test ids differ from the competition's; the test set changed. Retrain.")
    return data["logits"].astype(np.float64)


def fold_average_logits(exp_dir: Path, test_ids: tuple[str, ...]) -> np.ndarray | None:
    """The mean of an experiment's fold models' test logits (None when no fold has them): the one fold average the
    submission and the report both use."""
    files = sorted(exp_dir.glob("fold*/test.npz"))
    return np.mean([read_test_logits(f, test_ids) for f in files], axis=0) if files else None


def load_test_logits(exp_dir: Path, test_ids: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Test logits of one experiment: the full retrain's when it exists, else the mean over its fold models."""
    full = exp_dir / "full" / "test.npz"
    if full.exists():
        return read_test_logits(full, test_ids), "full retrain"
    average = fold_average_logits(exp_dir, test_ids)
    if average is None:
        raise FoldwiseError(f"{exp_dir}: no full/test.npz or fold*/test.npz; train it first.")
    return average, f"mean logits of {len(list(exp_dir.glob('fold*/test.npz')))} fold models"


def expected_frame(comp: Competition) -> pd.DataFrame:
    """The sample submission (or the default id,label frame when the competition ships none)."""
    fmt = comp.submission
    if fmt.sample_path is not None:
        return read_csv(fmt.sample_path)
    return pd.DataFrame({fmt.id_column: list(comp.test_ids), fmt.label_column: comp.classes[0]})


def validate_submission(
    df: pd.DataFrame, sample: pd.DataFrame, classes, where: str = "submission", probabilities: bool = False
) -> None:
    """Same columns, same ids in the same order, and a known class (or a probability row summing to 1) per row."""
    if list(df.columns) != list(sample.columns):
        raise FoldwiseError(f"{where}: columns {list(df.columns)} differ from the sample's {list(sample.columns)}.")
    id_col = sample.columns[0]
    got, want = df[id_col].astype(str).tolist(), sample[id_col].astype(str).tolist()
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
    if probabilities:
        values = df[sample.columns[1:]].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
            raise FoldwiseError(f"{where}: probabilities must be finite and within [0, 1].")
        worst = float(np.abs(values.sum(axis=1) - 1).max())
        if worst > 1e-4:
            raise FoldwiseError(f"{where}: probability rows must sum to 1 (off by up to {worst:.2g}).")
        return
    unknown = sorted(set(df[sample.columns[1]].astype(str)) - {str(c) for c in classes})
    if unknown:
        raise FoldwiseError(f"{where}: labels {unknown[:5]} are not classes of this competition.")


def submission_frame(comp: Competition, probs: np.ndarray) -> pd.DataFrame:
    """Rows in test-id order: the argmax class name, or one probability column per class when the sample asks."""
    fmt = comp.submission
    frame = {fmt.id_column: list(comp.test_ids)}
    if fmt.wants_probabilities:
        for column, k in zip(fmt.probability_columns, fmt.probability_classes):
            frame[column] = probs[:, k]
    else:
        frame[fmt.label_column] = [comp.classes[i] for i in probs.argmax(1)]
    return pd.DataFrame(frame)


def make_submission(comp: Competition, ws: Workspace) -> tuple[Path, dict]:
    """Apply blend.json's fitted blend to the test logits, validate, and write submission.csv atomically."""
    blend_path = ws.blend_dir(comp.name) / "blend.json"
    if not blend_path.exists():
        raise FoldwiseError(f"{blend_path}: missing; run `foldwise blend input/{comp.name} <exp> ...` first.")
    choice = json.loads(blend_path.read_text())
    if choice.get("classes") != list(comp.classes) or "blend" not in choice:
        raise FoldwiseError(f"{blend_path}: made for other data or by an older foldwise; rerun `foldwise blend`.")
    check_inputs_unchanged(choice, {m: ws.comp_dir(comp.name) / m for m in choice.get("inputs") or {}}, blend_path)
    fitted = FittedBlend.from_dict(choice["blend"])
    logits, sources = [], {}
    for exp in fitted.models:
        z, sources[exp] = load_test_logits(ws.comp_dir(comp.name) / exp, comp.test_ids)
        logits.append(z)
    df = submission_frame(comp, fitted.predict_proba(logits))
    path = ws.submission_csv(comp.name)
    validate_submission(df, expected_frame(comp), comp.classes, str(path), comp.submission.wants_probabilities)
    write_atomic(path, lambda p: df.to_csv(p, index=False, lineterminator="\n"))
    return path, {"method": fitted.method, "models": list(fitted.models), "sources": sources, "rows": len(df)}


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
        raise FoldwiseError(
            f"{submission}: {len(missing)} ids of {solution} are missing (e.g. {missing[:3]}), "
            f"{len(sub)} rows vs {len(sol)} expected."
        )
    merged = sol.merge(sub, on=id_col, suffixes=("_true", "_pred"))
    correct = merged[f"{label_col}_true"] == merged[f"{label_col}_pred"]
    return {"accuracy": float(correct.mean()), "rows": int(len(merged)), "correct": int(correct.sum())}
