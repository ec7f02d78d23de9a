"""Test logits + blend.json -> submission.csv (validated, written atomically); scoring a submission against a key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from foldwise.blending.blend import check_inputs_unchanged, fold_files
from foldwise.blending.ensemble import FittedBlend
from foldwise.blending.formats import expected_frame, submission_frame, validate_submission
from foldwise.blending.postprocess import decision_of
from foldwise.data.competition import Competition
from foldwise.data.csvfiles import read_csv
from foldwise.data.formats import with_metric
from foldwise.errors import FoldwiseError
from foldwise.fileio import sha256_file, write_atomic
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
    files = fold_files(exp_dir, "test.npz")
    return np.mean([read_test_logits(f, test_ids) for f in files], axis=0) if files else None


def full_retrain_kind(run_dir: Path) -> str:
    """'full retrain', or 'full retrain from fold0's weights' for a warm one (its config.yaml says), which must have
    started from the fold model now on disk: a fold trained again since would leave it predicting from old weights."""
    config = run_dir / "config.yaml"
    start = (yaml.safe_load(config.read_text()) or {}).get("init_from") if config.is_file() else None
    if not start:
        return "full retrain"
    fold_model = run_dir.parent / start["run"] / "model.pt"
    if not fold_model.is_file() or sha256_file(fold_model) != start["model_sha256"]:
        raise FoldwiseError(
            f"{run_dir}: a warm full retrain from {fold_model}, which has changed since (or is gone); train it again "
            f"(`foldwise train ... --full --from-fold {start['run'].removeprefix('fold')}`) or remove {run_dir}."
        )
    return f"full retrain from {start['run']}'s weights"


def load_test_logits(exp_dir: Path, test_ids: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Test logits of one experiment: the full retrain's when it exists, else the mean over its fold models."""
    full = exp_dir / "full" / "test.npz"
    if full.exists():
        return read_test_logits(full, test_ids), full_retrain_kind(exp_dir / "full")
    average = fold_average_logits(exp_dir, test_ids)
    if average is None:
        raise FoldwiseError(f"{exp_dir}: no full/test.npz or fold*/test.npz; train it first.")
    return average, f"mean logits of {len(fold_files(exp_dir, 'test.npz'))} fold models"


def make_submission(comp: Competition, ws: Workspace) -> tuple[Path, dict]:
    """Apply blend.json's fitted blend to the test logits, validate, and write submission.csv atomically."""
    blend_path = ws.blend_dir(comp.name) / "blend.json"
    if not blend_path.exists():
        raise FoldwiseError(f"{blend_path}: missing; run `foldwise blend input/{comp.name} <exp> ...` first.")
    choice = json.loads(blend_path.read_text())
    if choice.get("classes") != list(comp.classes) or "blend" not in choice:
        raise FoldwiseError(f"{blend_path}: made for other data or by an older foldwise; rerun `foldwise blend`.")
    comp = with_metric(comp, choice.get("metric", comp.metric))  # the submission's kind follows the blend's metric
    check_inputs_unchanged(choice, {m: ws.comp_dir(comp.name) / m for m in choice.get("inputs") or {}}, blend_path)
    fitted = FittedBlend.from_dict(choice["blend"])
    logits, sources = [], {}
    for exp in fitted.models:
        z, sources[exp] = load_test_logits(ws.comp_dir(comp.name) / exp, comp.test_ids)
        logits.append(z)
    probs, decision = fitted.predict_proba(logits), decision_of(choice)
    labels = decision.labels(probs) if comp.submission.kind == "label" and decision.kind != "none" else None
    df = submission_frame(comp, decision.probs(probs), labels)
    path = ws.submission_csv(comp.name)
    fmt = comp.submission
    validate_submission(df, expected_frame(comp), comp.classes, str(path), fmt.kind, fmt.k)
    write_atomic(path, lambda p: df.to_csv(p, index=False, lineterminator="\n"))
    return path, {"method": fitted.method, "models": list(fitted.models), "sources": sources, "rows": len(df)}


def score_submission(submission: Path, solution: Path, scored_by: str = "accuracy") -> dict:
    """A submission against a solution key (id,label; matched by id): accuracy of label submissions, ROC-AUC of a
    positive-class probability, MAP@k of top-k labels (k from the rows); {metric, score, rows[, correct]}."""
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
    truth, predicted = merged[f"{label_col}_true"].astype(str), merged[f"{label_col}_pred"].astype(str)
    if predicted.str.split().str.len().max() > 1:  # top-k labels: MAP@k
        ranks = [row.split().index(t) + 1 if t in row.split() else 0 for row, t in zip(predicted, truth)]
        k = int(predicted.str.split().str.len().max())
        return {
            "metric": f"map_at_{k}",
            "score": float(np.mean([1 / r if r else 0 for r in ranks])),
            "rows": len(ranks),
        }
    if scored_by == "roc_auc" or (len(set(truth)) == 2 and all(fraction_or_bit(v) for v in predicted)):
        from sklearn.metrics import roc_auc_score

        positive = sorted(set(truth))[1]
        score = roc_auc_score(truth == positive, predicted.astype(float))
        return {"metric": "roc_auc", "score": float(score), "rows": len(truth)}
    correct = truth == predicted
    score = float(correct.mean())
    return {"metric": "accuracy", "score": score, "accuracy": score, "rows": len(truth), "correct": int(correct.sum())}


def score_line(result: dict) -> str:
    """'accuracy 0.9972 (359/360)', 'roc_auc 0.9123 (360 rows)': what `foldwise score` prints."""
    if "correct" in result:
        return f"{result['metric']} {result['score']:.4f} ({result['correct']}/{result['rows']})"
    return f"{result['metric']} {result['score']:.4f} ({result['rows']} rows)"


def fraction_or_bit(value: str) -> bool:
    """A probability written as a number in [0, 1] that is not a plain class id (0 or 1 alone)."""
    try:
        return 0.0 <= float(value) <= 1.0 and value.strip() not in ("0", "1")
    except ValueError:
        return False
