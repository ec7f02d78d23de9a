"""Metric-specific post-processing of the chosen blend's probabilities, fitted by cross-validation over the OOF rows
and kept only when it scores better on rows it was not fitted on:

- threshold: binary competitions scored by F1 or accuracy; the positive class from a cut other than 0.5.
- qwk_cuts: ordinal grades scored by quadratic weighted kappa; cut points on the expected grade (sum_k k p_k), the
  "optimized rounding" of the APTOS solutions, instead of the most probable grade.
- prior: log loss; a per-class bias on the log-probabilities (a class-prior correction) fitted by likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedKFold

from foldwise.blending.calibration import log_softmax
from foldwise.blending.metrics import paired_p, safe_score
from foldwise.metrics import Metric

SIGNIFICANCE = 0.05
CUT_GRID = 20  # candidate positions per cut point and pass
CUT_PASSES = 3
CUT_SHRINK = 0.25  # each pass's window around the cut is this fraction of the last one's width: coarse to fine


@dataclass(frozen=True)
class Decision:
    """A fitted post-processing step: how probabilities become the submitted probabilities and labels."""

    kind: str = "none"  # none | threshold | qwk_cuts | prior
    params: tuple[float, ...] = ()

    def probs(self, probs: np.ndarray) -> np.ndarray:
        """Submitted probabilities (a prior correction changes them; the other kinds decide labels only)."""
        if self.kind != "prior":
            return probs
        return np.exp(log_softmax(np.log(np.clip(probs, 1e-15, 1.0)) + np.asarray(self.params)))

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """Submitted class indices."""
        if self.kind == "threshold":
            return (probs[:, 1] >= self.params[0]).astype(int)
        if self.kind == "qwk_cuts":
            return np.digitize(probs @ np.arange(probs.shape[1]), np.asarray(self.params))
        return self.probs(probs).argmax(1)

    def scored_probs(self, probs: np.ndarray) -> np.ndarray:
        """What the metric sees: adjusted probabilities, or the decided labels as one-hot rows."""
        if self.kind in ("threshold", "qwk_cuts"):
            return np.eye(probs.shape[1])[self.labels(probs)]
        return self.probs(probs)


def kinds_for(scored: Metric, n_classes: int) -> list[str]:
    """The post-processing that can help this metric."""
    if n_classes == 2 and scored.name in ("macro_f1", "accuracy"):
        return ["threshold"]
    if scored.name == "qwk" and n_classes > 2:
        return ["qwk_cuts"]
    if scored.name == "log_loss":
        return ["prior"]
    return []


def fit(kind: str, probs: np.ndarray, labels: np.ndarray, scored: Metric) -> Decision:
    """Fit one kind of post-processing on exactly these rows."""
    if kind == "threshold":
        grid = np.unique(np.quantile(probs[:, 1], np.linspace(0.01, 0.99, 99)))
        scores = [safe_score(scored, Decision(kind, (t,)).scored_probs(probs), labels) for t in grid]
        return Decision(kind, (float(grid[int(np.nanargmax(scores))]),))
    if kind == "qwk_cuts":
        return Decision(kind, fit_cuts(probs, labels, scored))
    if kind == "prior":
        return Decision(kind, fit_prior(probs, labels))
    return Decision()


def fit_cuts(probs: np.ndarray, labels: np.ndarray, scored: Metric) -> tuple[float, ...]:
    """Cut points on the expected grade maximizing the metric: coordinate search, each cut between its neighbours,
    coarse to fine: the first pass tries CUT_GRID points across the whole gap between the neighbours, each later
    pass a window CUT_SHRINK times as wide around the cut. Its last pass is finer than 60 evenly spaced points per
    pass, at a third of the metric calls (the suite's ordinal demo had spent 25 of its 43 s here)."""
    classes = probs.shape[1]
    cuts = start_cuts(probs, labels)
    for step in range(CUT_PASSES):
        for i in range(len(cuts)):
            low = cuts[i - 1] if i else 0.0
            high = cuts[i + 1] if i + 1 < len(cuts) else classes - 1.0
            half = (high - low) * CUT_SHRINK**step  # the first window reaches both neighbours from anywhere
            window = np.linspace(max(low, cuts[i] - half), min(high, cuts[i] + half), CUT_GRID)
            best, best_score = cuts[i], cut_score(cuts, probs, labels, scored)
            for value in window[(window > low) & (window < high)]:
                trial = cuts.copy()
                trial[i] = value
                score = cut_score(trial, probs, labels, scored)
                if score > best_score:
                    best, best_score = value, score
            cuts[i] = best
    return tuple(float(c) for c in cuts)


def start_cuts(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Where the search starts: cut points that give each grade its share of the rows (quantiles of the expected
    grade at the labels' cumulative class shares), so grades squeezed into a narrow band start inside it; the
    rounding points (0.5, 1.5, ...) where that gives no increasing cuts."""
    classes = probs.shape[1]
    shares = np.cumsum(np.bincount(labels, minlength=classes))[:-1] / len(labels)
    cuts = np.quantile(probs @ np.arange(classes), shares)
    inside = np.all(np.diff(cuts) > 0) and 0 < cuts[0] and cuts[-1] < classes - 1
    return cuts if inside else np.arange(classes - 1) + 0.5


def cut_score(cuts: np.ndarray, probs: np.ndarray, labels: np.ndarray, scored: Metric) -> float:
    """The metric of the grades these cut points give."""
    return safe_score(scored, Decision("qwk_cuts", tuple(cuts)).scored_probs(probs), labels)


def fit_prior(probs: np.ndarray, labels: np.ndarray) -> tuple[float, ...]:
    """Per-class biases on the log-probabilities minimizing log loss (the first class's fixed at 0)."""
    logp = np.log(np.clip(probs, 1e-15, 1.0))
    rows = np.arange(len(labels))

    def loss(free: np.ndarray) -> float:
        return float(-log_softmax(logp + np.r_[0.0, free])[rows, labels].mean())

    result = minimize(loss, np.zeros(probs.shape[1] - 1), method="L-BFGS-B")
    return tuple(float(b) for b in np.r_[0.0, result.x])


def evaluate(probs: np.ndarray, labels: np.ndarray, scored: Metric, seed: int = 0) -> dict:
    """The metric's post-processing, scored by 5-fold CV over the OOF rows (each row decided by a step fitted
    without it) against the plain probabilities; refitted on all rows when it helps. {} when none applies."""
    kinds = kinds_for(scored, probs.shape[1])
    counts = np.bincount(labels, minlength=probs.shape[1])
    if not kinds or counts.min() < 2:
        return {}
    kind = kinds[0]
    decided = np.zeros_like(probs)
    splits = StratifiedKFold(5 if counts.min() >= 5 else 2, shuffle=True, random_state=seed)
    for fit_rows, held_out in splits.split(np.zeros(len(labels)), labels):
        decided[held_out] = fit(kind, probs[fit_rows], labels[fit_rows], scored).scored_probs(probs[held_out])
    before, after = safe_score(scored, probs, labels), safe_score(scored, decided, labels)
    gain = (after - before) if scored.higher_is_better else (before - after)
    p = paired_p(decided, probs, labels, scored, seed)
    used = bool(gain > 0)
    decision = fit(kind, probs, labels, scored) if used else Decision()
    return {
        "kind": kind,
        "before": before,
        "after": after,
        "gain": gain,
        "p": p,
        "significant": bool(p < SIGNIFICANCE),
        "used": used,
        "decision": {"kind": decision.kind, "params": list(decision.params)},
    }


def decision_of(choice: dict) -> Decision:
    """The Decision blend.json records (none when it records no post-processing)."""
    stored = (choice.get("postprocess") or {}).get("decision") or {}
    return Decision(stored.get("kind", "none"), tuple(stored.get("params", ())))
