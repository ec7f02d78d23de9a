"""The competition's metric: what every OOF score, learning curve, early stop, blend choice and report uses.

    metric: roc_auc        # in input/<comp>/foldwise.yaml, or --metric on blend/run
    metric: map_at_5       # MAP@k / top_k take k from the name (or from the sample submission's top-k format)

Scores come from scikit-learn wherever it has the metric (accuracy_score, log_loss, f1_score, roc_auc_score,
cohen_kappa_score); MAP@k, which it lacks, is the mean of 1/rank of the true label within the top k. Every
metric takes (N, C) probabilities and (N,) integer labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, log_loss, roc_auc_score

from foldwise.errors import FoldwiseError

PROB_FLOOR = 1e-15  # clip before log so one confidently wrong row costs a finite loss


@dataclass(frozen=True)
class Metric:
    """A competition metric: its name, whether higher is better, whether it is a mean over rows."""

    name: str  # accuracy | log_loss | macro_f1 | roc_auc | qwk | map_at_<k> | top_<k>
    higher_is_better: bool
    per_row: bool  # a mean of per-row scores (McNemar / paired by row) rather than a whole-set statistic
    k: int = 0  # map_at_k / top_k

    def __call__(self, probs: np.ndarray, labels: np.ndarray) -> float:
        """The score of probabilities against integer labels."""
        probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
        return float(SCORERS[self.family](probs, labels, self))

    @property
    def family(self) -> str:
        """The metric without its k (map_at_5 -> map_at_k)."""
        return re.sub(r"_\d+$", "_k", self.name)

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` beats score `b`."""
        return a > b if self.higher_is_better else a < b

    def sort_key(self, score: float) -> float:
        """Sort key, best first."""
        return -score if self.higher_is_better else score

    def row_scores(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-row contributions of a per-row metric (correct / 1/rank / top-k hit)."""
        return ROW_SCORERS[self.family](np.asarray(probs, dtype=np.float64), np.asarray(labels), self)


def clipped(probs: np.ndarray) -> np.ndarray:
    """Probabilities floored and renormalized (sklearn warns on rows that do not sum to 1)."""
    out = np.clip(probs, PROB_FLOOR, 1.0)
    return out / out.sum(axis=1, keepdims=True)


def ranks_of_truth(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true class among its probabilities (ties: the true class ranks after equals)."""
    truth = probs[np.arange(len(labels)), labels]
    return (probs > truth[:, None]).sum(axis=1) + 1


def roc_auc(probs: np.ndarray, labels: np.ndarray, metric: Metric) -> float:
    """Binary: AUC of the positive class's probability; more classes: macro one-vs-rest AUC."""
    if len(np.unique(labels)) < 2:
        raise FoldwiseError("roc_auc needs both classes among the rows it scores; there is only one.")
    if probs.shape[1] == 2:
        return roc_auc_score(labels, probs[:, 1])
    present = np.unique(labels)  # a class absent from these rows has no AUC
    scores = probs[:, present] / probs[:, present].sum(axis=1, keepdims=True)
    return roc_auc_score(np.searchsorted(present, labels), scores, multi_class="ovr", average="macro")


SCORERS = {
    "accuracy": lambda p, y, m: accuracy_score(y, p.argmax(1)),
    "log_loss": lambda p, y, m: log_loss(y, clipped(p), labels=list(range(p.shape[1]))),
    "macro_f1": lambda p, y, m: f1_score(y, p.argmax(1), average="macro", zero_division=0),
    "roc_auc": roc_auc,
    "qwk": lambda p, y, m: cohen_kappa_score(y, p.argmax(1), weights="quadratic", labels=list(range(p.shape[1]))),
    "map_at_k": lambda p, y, m: float(np.mean(np.where(ranks_of_truth(p, y) <= m.k, 1 / ranks_of_truth(p, y), 0))),
    "top_k": lambda p, y, m: float(np.mean(ranks_of_truth(p, y) <= m.k)),
}
ROW_SCORERS = {  # the metric's per-row terms: their mean is the metric (tests check it against sklearn's)
    "accuracy": lambda p, y, m: (p.argmax(1) == y).astype(float),
    "log_loss": lambda p, y, m: -np.log(clipped(p)[np.arange(len(y)), y]),
    "map_at_k": lambda p, y, m: np.where(ranks_of_truth(p, y) <= m.k, 1 / ranks_of_truth(p, y), 0.0),
    "top_k": lambda p, y, m: (ranks_of_truth(p, y) <= m.k).astype(float),
}
HIGHER_IS_BETTER = {
    "accuracy": True,
    "log_loss": False,
    "macro_f1": True,
    "roc_auc": True,
    "qwk": True,
    "map_at_k": True,
    "top_k": True,
}
NAMES = "accuracy, log_loss, macro_f1, roc_auc, qwk, map_at_<k> (e.g. map_at_5), top_<k>"


def metric(name: str) -> Metric:
    """The Metric named `name` (see NAMES); an unknown name is an error listing them."""
    name = str(name or "accuracy").strip().lower()
    family, k = re.sub(r"_\d+$", "_k", name), re.search(r"_(\d+)$", name)
    if family not in SCORERS or (family.endswith("_k") and not (k and int(k.group(1)) >= 1)):
        raise FoldwiseError(f"metric {name!r}: choose one of {NAMES}.")
    return Metric(name, HIGHER_IS_BETTER[family], family in ROW_SCORERS, int(k.group(1)) if k else 0)
