"""Scores of probabilities against labels, their uncertainty, and which of two candidates is better.

The one ranking rule (`ranking`) serves both the blend table and the greedy ensemble's steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import log_loss

from foldwise.blending.calibration import check_labels
from foldwise.errors import FoldwiseError

METRICS = ("accuracy", "log_loss")
PROB_FLOOR = 1e-15  # clip before log so one confidently wrong row costs a finite loss


def ranking(metric: str) -> Callable[[float, float], tuple[float, float]]:
    """Sort key of an (accuracy, log loss) pair, best first: by `metric`, the other breaking ties."""
    if metric == "accuracy":
        return lambda accuracy, loss: (-accuracy, loss)
    if metric == "log_loss":
        return lambda accuracy, loss: (loss, -accuracy)
    raise FoldwiseError(f"metric {metric!r}: choose accuracy or log_loss.")


def reliability_curve(
    probs: np.ndarray, labels: np.ndarray, bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty confidence bin ((i/bins, (i+1)/bins]): mean confidence, accuracy and row count."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = check_labels(labels, *probs.shape)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    keep = count > 0
    mean_conf = np.bincount(idx, weights=conf, minlength=bins)[keep] / count[keep]
    acc = np.bincount(idx, weights=correct, minlength=bins)[keep] / count[keep]
    return mean_conf, acc, count[keep]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Row-weighted mean gap between confidence and accuracy over equal-width confidence bins."""
    conf, acc, count = reliability_curve(probs, labels, bins)
    return float(np.sum(count * np.abs(acc - conf)) / max(count.sum(), 1))


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """accuracy, top5 (None below 10 classes), log_loss (clipped probabilities) and ece."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = check_labels(labels, *probs.shape)
    c = probs.shape[1]
    top5 = None
    if c >= 10:
        top5 = float(np.mean(np.any(np.argpartition(-probs, 4, axis=1)[:, :5] == labels[:, None], axis=1)))
    clipped = np.clip(probs, PROB_FLOOR, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)  # sklearn warns on rows that do not sum to 1
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "top5": top5,
        "log_loss": float(log_loss(labels, clipped, labels=list(range(c)))),
        "ece": expected_calibration_error(probs, labels),
    }


def bootstrap_ci(correct: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a boolean correctness vector."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 1 or len(correct) == 0:
        raise FoldwiseError(f"bootstrap_ci needs a non-empty 1-D correctness vector, got shape {correct.shape}.")
    n = len(correct)
    # Resampling n booleans with replacement draws the count of True from Binomial(n, mean): same law, O(n_boot).
    means = np.random.default_rng(seed).binomial(n, correct.mean(), size=n_boot) / n
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value on the rows where exactly one of the two is correct."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise FoldwiseError(f"mcnemar_p compares two 1-D vectors over the same rows, got {a.shape} and {b.shape}.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
