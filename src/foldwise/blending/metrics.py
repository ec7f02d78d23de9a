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
from foldwise.metrics import Metric
from foldwise.metrics import metric as competition_metric

METRICS = ("accuracy", "log_loss")
PROB_FLOOR = 1e-15  # clip before log so one confidently wrong row costs a finite loss


def ranking(name: str) -> Callable[[float, float], tuple[float, float]]:
    """Sort key of a (score, log loss) pair, best first: accuracy (log loss breaking ties), log loss (accuracy
    breaking ties: the pair is then (accuracy, log loss)), or any other metric's score (log loss breaking ties)."""
    if name == "accuracy":
        return lambda accuracy, loss: (-accuracy, loss)
    if name == "log_loss":
        return lambda accuracy, loss: (loss, -accuracy)
    scored = competition_metric(name)
    return lambda score, loss: (scored.sort_key(score), loss)


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


BOOTSTRAPS = 1000  # resamples for a per-row metric's interval (cheap: means of row scores)
WHOLE_SET_BOOTSTRAPS = 200  # resamples for a whole-set metric (ROC-AUC, QWK, F1: the metric recomputed each time)


def resamples(n: int, count: int, seed: int):
    """`count` bootstrap index vectors of n rows, drawn in chunks (a 1000 x 50,000 matrix would not fit)."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, 50):
        yield from rng.integers(0, n, size=(min(50, count - start), n))


def metric_interval(probs: np.ndarray, labels: np.ndarray, scored: Metric, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap interval of the metric: accuracy by its binomial shortcut, per-row metrics as means of
    resampled row scores, whole-set metrics recomputed on WHOLE_SET_BOOTSTRAPS resamples."""
    if scored.name == "accuracy":
        return bootstrap_ci(probs.argmax(1) == labels, seed=seed, alpha=alpha)
    if scored.per_row:
        rows = scored.row_scores(probs, labels)
        values = [rows[i].mean() for i in resamples(len(rows), BOOTSTRAPS, seed)]
    else:
        values = [safe_score(scored, probs[i], labels[i]) for i in resamples(len(labels), WHOLE_SET_BOOTSTRAPS, seed)]
    lo, hi = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def safe_score(scored: Metric, probs: np.ndarray, labels: np.ndarray) -> float:
    """The metric, or NaN where a resample cannot be scored (ROC-AUC of rows of one class)."""
    try:
        return scored(probs, labels)
    except (FoldwiseError, ValueError):
        return float("nan")


def paired_p(probs_a: np.ndarray, probs_b: np.ndarray, labels: np.ndarray, scored: Metric, seed: int = 0) -> float:
    """Two-sided p-value that two candidates score alike on the same rows: exact McNemar for accuracy, else a
    paired bootstrap of the metric's difference (both scored on each resample of the rows)."""
    if scored.name == "accuracy":
        return mcnemar_p(probs_a.argmax(1) == labels, probs_b.argmax(1) == labels)
    if np.array_equal(probs_a, probs_b):
        return 1.0
    if scored.per_row:  # the metric's difference on a resample is the mean of the rows' differences
        rows = scored.row_scores(probs_a, labels) - scored.row_scores(probs_b, labels)
        diffs = np.array([rows[i].mean() for i in resamples(len(labels), BOOTSTRAPS, seed)])
    else:
        diffs = np.array(
            [
                safe_score(scored, probs_a[i], labels[i]) - safe_score(scored, probs_b[i], labels[i])
                for i in resamples(len(labels), WHOLE_SET_BOOTSTRAPS, seed)
            ]
        )
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return 1.0
    return float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value on the rows where exactly one of the two is correct."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise FoldwiseError(f"mcnemar_p compares two 1-D vectors over the same rows, got {a.shape} and {b.shape}.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
