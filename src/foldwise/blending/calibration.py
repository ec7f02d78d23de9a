"""Probabilities from logits, and temperature scaling: the calibration every blend method starts from.

Every function takes `logits`: one (N, C) array per model over the same rows in the same order, and `labels` (N,).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from foldwise.errors import FoldwiseError

T_BOUNDS = (0.05, 20.0)  # beyond these a model is either all-or-nothing or uniform; neither is worth calibrating to


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; subtracting the row max keeps huge logits finite."""
    return np.exp(log_softmax(logits))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log of softmax in float64, exact even where softmax underflows to 0."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def check_labels(labels: np.ndarray, n: int, c: int) -> np.ndarray:
    """Labels as an (n,) integer array in [0, c), or a FoldwiseError saying what is wrong."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise FoldwiseError(
            f"labels must be {n} integers (one per logit row), got shape {labels.shape} "
            f"of {labels.dtype}; pass the OOF labels aligned with the logits."
        )
    if n and (labels.min() < 0 or labels.max() >= c):
        raise FoldwiseError(f"labels must lie in [0, {c}) to match {c} logit columns; check the class list.")
    return labels


def check_logits(models: list[str] | tuple[str, ...], logits: list[np.ndarray]) -> np.ndarray:
    """Stack per-model logits into (M, N, C) float64 after checking they describe the same rows and classes."""
    if len(logits) == 0 or len(logits) != len(models):
        raise FoldwiseError(
            f"got {len(logits)} logit arrays for {len(models)} models {list(models)}; "
            "pass exactly one (N, C) array per model, in the models' order."
        )
    shapes = {np.shape(a) for a in logits}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise FoldwiseError(
            f"logit arrays must all be (N, C) with the same N and C, got {sorted(shapes)}; "
            "align the models' OOF rows first."
        )
    z = np.stack([np.asarray(a, dtype=np.float64) for a in logits])
    if not np.all(np.isfinite(z)):
        bad = [m for m, zm in zip(models, z) if not np.all(np.isfinite(zm))]
        raise FoldwiseError(f"logits of {bad} contain NaN or inf (the run diverged); retrain with a lower lr.")
    return z


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T minimizing the NLL of softmax(logits / T), searched over log T within T_BOUNDS."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise FoldwiseError(f"fit_temperature needs (N, C) logits with N > 0, got shape {z.shape}.")
    labels = check_labels(labels, *z.shape)
    rows = np.arange(len(z))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t))[rows, labels].mean())

    # Searching log T makes the scale symmetric: halving and doubling T are equally far from T = 1.
    res = minimize_scalar(nll, bounds=np.log(T_BOUNDS), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))
