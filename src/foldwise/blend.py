"""Ensembles on out-of-fold logits: single models, max-confidence and mean of probabilities, on identical rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from foldwise.errors import FoldwiseError


@dataclass(frozen=True)
class OOF:
    """One experiment's out-of-fold logits over all its folds, sorted by id."""

    name: str
    ids: np.ndarray
    logits: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,) int


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_oof(exp_dir: Path) -> OOF:
    """Concatenate fold*/oof.npz of one experiment and sort the rows by id."""
    files = sorted(exp_dir.glob("fold*/oof.npz"))
    if not files:
        raise FoldwiseError(f"{exp_dir}: no fold*/oof.npz; train it first (`foldwise train -c configs/<recipe>.yaml`).")
    parts = [np.load(f) for f in files]
    ids = np.concatenate([p["ids"] for p in parts])
    order = np.argsort(ids, kind="stable")
    if len(np.unique(ids)) != len(ids):
        raise FoldwiseError(f"{exp_dir}: an id appears in two folds' oof.npz; the folds changed. Retrain with --force.")
    logits = np.concatenate([p["logits"] for p in parts])[order]
    labels = np.concatenate([p["labels"] for p in parts])[order]
    return OOF(name=exp_dir.name, ids=ids[order], logits=logits, labels=labels)


def check_aligned(oofs: list[OOF]) -> None:
    """Blends are only compared on identical OOF rows with identical labels."""
    ref = oofs[0]
    for other in oofs[1:]:
        if len(other.ids) != len(ref.ids) or not np.array_equal(other.ids, ref.ids):
            raise FoldwiseError(
                f"OOF rows differ: {ref.name} covers {len(ref.ids)} ids, {other.name} covers {len(other.ids)}. "
                "Train both on the same folds (e.g. --fold all for each) before blending."
            )
        if not np.array_equal(other.labels, ref.labels):
            raise FoldwiseError(f"OOF labels differ between {ref.name} and {other.name}; the folds changed. Retrain.")


def max_confidence(probs: list[np.ndarray]) -> np.ndarray:
    """Per row, the probabilities of the model whose top probability is highest (the seed projects' ensemble)."""
    stack = np.stack(probs)  # (M, N, C)
    pick = stack.max(axis=2).argmax(axis=0)  # (N,)
    return stack[pick, np.arange(stack.shape[1])]


def mean_probability(probs: list[np.ndarray]) -> np.ndarray:
    """Average of the models' softmax probabilities."""
    return np.mean(probs, axis=0)


METHODS = {"max_confidence": max_confidence, "mean_probability": mean_probability}


def apply_method(method: str, probs: list[np.ndarray]) -> np.ndarray:
    """Combine per-model probabilities with a named method ('single' takes the only model)."""
    if method == "single":
        if len(probs) != 1:
            raise FoldwiseError(f"method 'single' needs exactly one model, got {len(probs)}.")
        return probs[0]
    if method not in METHODS:
        raise FoldwiseError(f"unknown blend method {method!r}; known: single, {', '.join(METHODS)}.")
    return METHODS[method](probs)


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and log loss of probabilities against integer labels."""
    return {
        "accuracy": float(accuracy_score(labels, probs.argmax(axis=1))),
        "log_loss": float(log_loss(labels, np.clip(probs, 1e-15, 1), labels=np.arange(probs.shape[1]))),
    }


def compare(oofs: list[OOF]) -> list[dict]:
    """One row per candidate (each model alone, each blend) with its OOF metrics, best first."""
    check_aligned(oofs)
    probs = [softmax(o.logits) for o in oofs]
    labels = oofs[0].labels
    rows = [dict(candidate=o.name, method="single", models=[o.name], **metrics(p, labels)) for o, p in zip(oofs, probs)]
    if len(oofs) > 1:
        names = [o.name for o in oofs]
        for method in METHODS:
            rows.append(
                dict(candidate=method, method=method, models=names, **metrics(apply_method(method, probs), labels))
            )
    # Best accuracy first; log loss breaks ties (a more confident-and-right blend wins).
    return sorted(rows, key=lambda r: (-r["accuracy"], r["log_loss"]))
