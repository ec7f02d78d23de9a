"""Ensembling and calibration of several models' out-of-fold logits, fitted and scored without leaking rows.

Every function takes `logits`: one (N, C) array per model over the same rows in the same order, and `labels` (N,).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from foldwise.blending.calibration import check_labels, check_logits, fit_temperature, log_softmax, softmax
from foldwise.blending.metrics import PROB_FLOOR, ranking
from foldwise.errors import FoldwiseError
from foldwise.metrics import Metric
from foldwise.metrics import metric as competition_metric

METHODS: tuple[str, ...] = (
    "single",
    "max_confidence_raw",
    "max_confidence",
    "mean_probability",
    "mean_logits",
    "geometric_mean",
    "weighted",
    "greedy",
    "stacking",
)
STACK_LOG_FLOOR = float(np.log(1e-12))  # bounds the stacker's features so lbfgs stays well conditioned
GREEDY_STEPS = 25
GREEDY_TOL = 1e-12  # log-loss changes smaller than this are float noise from re-averaging the same model


def _check_method(method: str, models: list[str] | tuple[str, ...]) -> None:
    """A known method, and exactly one model for 'single'."""
    if method not in METHODS:
        raise FoldwiseError(f"unknown blend method {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "single" and len(models) != 1:
        raise FoldwiseError(f"method 'single' takes exactly one model, got {len(models)}: {list(models)}.")


@dataclass(frozen=True)
class FittedBlend:
    """A blend fitted on OOF rows; applies to any logits of the same models (in `models` order)."""

    method: str
    models: tuple[str, ...]
    temperatures: tuple[float, ...]  # one per model; 1.0 = uncalibrated
    weights: tuple[float, ...] | None = None  # "weighted", "greedy": per model, sum to 1
    stacker: dict | None = None  # "stacking": {"coef", "intercept", "classes"} as plain lists

    def __post_init__(self) -> None:
        _check_method(self.method, self.models)
        if len(self.temperatures) != len(self.models):
            raise FoldwiseError(f"{len(self.temperatures)} temperatures for {len(self.models)} models; refit it.")
        if self.method in ("weighted", "greedy") and (self.weights is None or len(self.weights) != len(self.models)):
            raise FoldwiseError(f"a {self.method!r} blend needs one weight per model; refit the blend.")
        if self.method == "stacking" and not self.stacker:
            raise FoldwiseError("a 'stacking' blend needs its stacker coefficients; refit the blend.")

    def predict_proba(self, logits: list[np.ndarray]) -> np.ndarray:
        """(N, C) probabilities for the models' logits (same order as `models`); rows sum to 1."""
        z = check_logits(self.models, logits)
        rows = np.arange(z.shape[1])
        if self.method == "max_confidence_raw":
            # Kept as the seed projects had it: raw logits, compared by their max, no calibration.
            pick = z.max(axis=2).argmax(axis=0)
            return softmax(z[pick, rows])
        logp = log_softmax(z / np.asarray(self.temperatures)[:, None, None])
        if self.method == "single":
            return np.exp(logp[0])
        if self.method == "max_confidence":
            return np.exp(logp[logp.max(axis=2).argmax(axis=0), rows])
        if self.method == "mean_probability":
            return np.exp(logp).mean(axis=0)
        if self.method == "mean_logits":
            return softmax((z / np.asarray(self.temperatures)[:, None, None]).mean(axis=0))
        if self.method == "geometric_mean":
            return softmax(logp.mean(axis=0))
        if self.method in ("weighted", "greedy"):
            return np.tensordot(np.asarray(self.weights), np.exp(logp), axes=1)
        return self._stack_proba(logp)

    def _stack_proba(self, logp: np.ndarray) -> np.ndarray:
        """Multinomial logistic regression from stored numbers; classes unseen in fitting get probability 0."""
        coef, intercept = np.asarray(self.stacker["coef"]), np.asarray(self.stacker["intercept"])
        classes = self.stacker.get("classes", list(range(len(intercept))))
        m, n, c = logp.shape
        if coef.shape[1] != m * c:
            raise FoldwiseError(
                f"the stacker was fitted on {coef.shape[1] // m} classes but the logits have {c}; "
                "refit the blend on logits of this competition."
            )
        out = np.zeros((n, c))
        out[:, classes] = softmax(_stack_features(logp) @ coef.T + intercept)
        return out

    def to_dict(self) -> dict:
        """JSON-serializable form (plain lists and floats)."""
        return {
            "method": self.method,
            "models": list(self.models),
            "temperatures": [float(t) for t in self.temperatures],
            "weights": None if self.weights is None else [float(w) for w in self.weights],
            "stacker": None if self.stacker is None else {k: _plain(v) for k, v in self.stacker.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> FittedBlend:
        """Inverse of to_dict."""
        try:
            weights, stacker = d.get("weights"), d.get("stacker")
            return cls(
                method=d["method"],
                models=tuple(d["models"]),
                temperatures=tuple(float(t) for t in d["temperatures"]),
                weights=None if weights is None else tuple(float(w) for w in weights),
                stacker=None if stacker is None else {k: _plain(v) for k, v in stacker.items()},
            )
        except (KeyError, TypeError) as e:
            raise FoldwiseError(f"blend entry is incomplete ({e!r}); rerun `foldwise blend` to rewrite it.") from e


def _plain(value):
    """Nested lists of Python numbers, so the stacker survives json and compares equal after a round trip."""
    return np.asarray(value).tolist()


def _stack_features(logp: np.ndarray) -> np.ndarray:
    """(M, N, C) calibrated log-probabilities -> (N, M*C), model by model, floored."""
    m, n, c = logp.shape
    return np.maximum(logp, STACK_LOG_FLOOR).transpose(1, 0, 2).reshape(n, m * c)


def fit_blend(
    method: str,
    models: list[str],
    logits: list[np.ndarray],
    labels: np.ndarray,
    metric: str = "accuracy",
    seed: int = 0,
) -> FittedBlend:
    """Fit `method` (temperatures, weights or stacker) on exactly the given rows."""
    _check_method(method, models)
    scored = competition_metric(metric)  # an unknown name is an error here, before any fitting
    z = check_logits(models, logits)
    labels = check_labels(labels, *z.shape[1:])
    if method == "max_confidence_raw":
        return FittedBlend(method, tuple(models), tuple(1.0 for _ in models))
    temps = tuple(fit_temperature(zm, labels) for zm in z)
    logp = log_softmax(z / np.asarray(temps)[:, None, None])
    weights = stacker = None
    if method == "weighted":
        weights = _fit_weights(np.exp(logp), labels)
    elif method == "greedy":
        weights = _greedy_weights(np.exp(logp), labels, scored)
    elif method == "stacking":
        stacker = _fit_stacker(logp, labels, seed)
    return FittedBlend(method, tuple(models), temps, weights=weights, stacker=stacker)


def _fit_weights(probs: np.ndarray, labels: np.ndarray) -> tuple[float, ...]:
    """Nonnegative weights summing to 1 minimizing log loss; softmax parametrization, started at uniform."""
    p = np.clip(probs[:, np.arange(probs.shape[1]), labels], PROB_FLOOR, 1.0)  # (M, N): each model's p(true label)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        q = w @ p
        g = -(p / q).mean(axis=1)  # d loss / d w
        return float(-np.log(q).mean()), w * (g - w @ g)  # chain rule through the softmax

    with threadpool_limits(1):  # see _fit_stacker
        res = minimize(loss_and_grad, np.zeros(len(p)), jac=True, method="L-BFGS-B")
    w = np.exp(res.x - res.x.max())
    return tuple(float(v) for v in w / w.sum())


def _acc_nll(avg: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy and log loss of averaged probabilities (a fast log loss for the greedy inner loop)."""
    p_true = np.clip(avg[np.arange(len(labels)), labels], PROB_FLOOR, 1.0)
    return float(np.mean(avg.argmax(axis=1) == labels)), float(-np.mean(np.log(p_true)))


def _greedy_score(avg: np.ndarray, labels: np.ndarray, scored: Metric) -> tuple[float, float]:
    """(accuracy, log loss) for the accuracy and log-loss metrics; (the metric, log loss) for any other."""
    acc, nll = _acc_nll(avg, labels)
    return (acc, nll) if scored.name in ("accuracy", "log_loss") else (scored(avg, labels), nll)


def _improves(new: tuple[float, float], cur: tuple[float, float], scored: Metric) -> bool:
    """Whether a greedy step's score pair beats the current ensemble's under the metric."""
    (acc, nll), (cur_acc, cur_nll) = new, cur
    if scored.name not in ("accuracy", "log_loss"):  # the metric first, log loss breaking ties
        return scored.better(acc, cur_acc) or (acc == cur_acc and nll < cur_nll - GREEDY_TOL)
    if scored.name == "log_loss":
        return nll < cur_nll - GREEDY_TOL or (nll <= cur_nll + GREEDY_TOL and acc > cur_acc)
    # An accuracy gain bought with a worse log loss is, in practice, a few near-tie rows flipped at random (a
    # pure-noise model does it every step) and does not survive nested CV; so such a step does not count.
    return (acc > cur_acc and nll <= cur_nll + GREEDY_TOL) or (acc == cur_acc and nll < cur_nll - GREEDY_TOL)


def _greedy_weights(probs: np.ndarray, labels: np.ndarray, scored: Metric) -> tuple[float, ...]:
    """Caruana forward selection with replacement on the running average; weights = pick counts / picks."""
    counts = np.zeros(len(probs), dtype=int)
    worst = -np.inf if scored.higher_is_better or scored.name == "log_loss" else np.inf
    total, cur = np.zeros_like(probs[0]), (worst, np.inf)
    order = ranking(scored.name)
    for step in range(1, GREEDY_STEPS + 1):
        scores = [_greedy_score((total + pm) / step, labels, scored) for pm in probs]
        better = [m for m, s in enumerate(scores) if _improves(s, cur, scored)]
        if not better:
            break
        m = min(better, key=lambda i: order(*scores[i]))  # ties: the earlier model
        counts[m] += 1
        total += probs[m]
        cur = scores[m]
    return tuple(float(c) for c in counts / counts.sum())


def _fit_stacker(logp: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Logistic regression on the models' calibrated log-probabilities, stored as plain numbers over C' <= C classes."""
    x, present = _stack_features(logp), np.unique(labels)
    if len(present) == 1:  # nothing to discriminate: always predict the one class seen
        return {"coef": [[0.0] * x.shape[1]], "intercept": [0.0], "classes": present.tolist()}
    # L-BFGS-B's BLAS calls on these tiny matrices run several times slower with a multi-threaded BLAS.
    with threadpool_limits(1):
        lr = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000, random_state=seed).fit(x, labels)
    coef, intercept = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # sklearn keeps one row (the positive class); softmax([0, s]) equals its sigmoid
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return {"coef": coef.tolist(), "intercept": intercept.tolist(), "classes": lr.classes_.tolist()}


def nested_cv_proba(
    method: str,
    models: list[str],
    logits: list[np.ndarray],
    labels: np.ndarray,
    metric: str = "accuracy",
    n_splits: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """(N, C) probabilities, each row predicted by a blend fitted without it (stratified K-fold over the rows)."""
    z = check_logits(models, logits)
    labels = check_labels(labels, *z.shape[1:])
    counts = np.bincount(labels)
    if counts.max(initial=0) < 2:
        raise FoldwiseError(
            f"nested CV needs some class with at least 2 rows, got {len(labels)} rows; blend on more OOF rows."
        )
    k = max(2, min(n_splits, int(counts[counts > 0].min())))
    out = np.zeros(z.shape[1:])
    with warnings.catch_warnings():
        # A class with a single row cannot appear on both sides of a split; the blends handle absent classes.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    for fit_rows, held_out in splits:
        fitted = fit_blend(method, models, [zm[fit_rows] for zm in z], labels[fit_rows], metric=metric, seed=seed)
        out[held_out] = fitted.predict_proba([zm[held_out] for zm in z])
    return out
