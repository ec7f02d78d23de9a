"""Unit tests for foldwise.blending.ensemble on synthetic logits whose right answer is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from foldwise.blending import ensemble
from foldwise.blending.calibration import fit_temperature, softmax
from foldwise.blending.ensemble import METHODS, FittedBlend, fit_blend, nested_cv_proba
from foldwise.blending.metrics import bootstrap_ci, expected_calibration_error, mcnemar_p, metrics, reliability_curve
from foldwise.errors import FoldwiseError


def sample_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One label per row drawn from that row's probabilities (inverse CDF)."""
    return (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)


def informative(rng: np.random.Generator, labels: np.ndarray, c: int, signal: float) -> np.ndarray:
    """Gaussian logits with `signal` added to the true class: larger signal, more accurate model."""
    z = rng.normal(size=(len(labels), c))
    z[np.arange(len(labels)), labels] += signal
    return z


def two_models(n: int = 300, c: int = 4, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A fairly good and a weak model over the same rows, for tests that only need some realistic logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    return [informative(rng, labels, c, 2.0), informative(rng, labels, c, 1.0) * 3], labels


def test_softmax_stable_for_huge_logits():
    """softmax is float64, sums to 1 per row and does not overflow on huge logits."""
    z = np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]], dtype=np.float32)
    p = softmax(z)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


def test_fit_temperature_recovers_known_temperature():
    """Labels drawn from softmax(z / 2.5) make fit_temperature(z) return 2.5 within 5%."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 10)) * 4
    labels = sample_labels(rng, softmax(z / 2.5))
    assert fit_temperature(z, labels) == pytest.approx(2.5, rel=0.05)


def test_weighted_and_greedy_ignore_a_noise_model():
    """Weights fitted on an informative and a pure-noise model put (almost) everything on the informative one."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 2000)
    logits = [rng.normal(size=(2000, 5)), informative(rng, labels, 5, 2.5)]  # noise first: order must not matter
    weighted = fit_blend("weighted", ["noise", "good"], logits, labels)
    assert weighted.weights[0] < 0.1 and sum(weighted.weights) == pytest.approx(1.0)
    for metric in ("accuracy", "log_loss"):
        greedy = fit_blend("greedy", ["noise", "good"], logits, labels, metric=metric)
        assert greedy.weights[1] >= 0.9 and sum(greedy.weights) == pytest.approx(1.0)


def test_greedy_combines_two_complementary_models():
    """Two equally good models with independent errors both enter the greedy ensemble, which beats either alone."""
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 5, 2000)
    logits = [informative(rng, labels, 5, 1.5), informative(rng, labels, 5, 1.5)]
    for metric in ("accuracy", "log_loss"):
        fitted = fit_blend("greedy", ["a", "b"], logits, labels, metric=metric)
        assert min(fitted.weights) >= 0.3
        alone = max(np.mean(z.argmax(axis=1) == labels) for z in logits)
        assert np.mean(fitted.predict_proba(logits).argmax(axis=1) == labels) > alone + 0.05


def test_averaging_methods_match_their_formulas():
    """mean_probability, mean_logits, geometric_mean and weighted combine per-model calibrated outputs as documented."""
    logits, labels = two_models()
    cal = {m: fit_blend(m, ["a", "b"], logits, labels) for m in ("mean_probability", "mean_logits", "geometric_mean")}
    ta, tb = cal["mean_logits"].temperatures
    pa, pb = softmax(logits[0] / ta), softmax(logits[1] / tb)
    np.testing.assert_allclose(cal["mean_probability"].predict_proba(logits), (pa + pb) / 2)
    np.testing.assert_allclose(cal["mean_logits"].predict_proba(logits), softmax((logits[0] / ta + logits[1] / tb) / 2))
    np.testing.assert_allclose(cal["geometric_mean"].predict_proba(logits), softmax((np.log(pa) + np.log(pb)) / 2))
    weighted = FittedBlend("weighted", ("a", "b"), (ta, tb), weights=(0.25, 0.75))
    np.testing.assert_allclose(weighted.predict_proba(logits), 0.25 * pa + 0.75 * pb)


def test_max_confidence_picks_the_confident_model_per_row():
    """Rows where A is confident and right take A's probabilities, rows where B is take B's; raw logits differ."""
    rng = np.random.default_rng(3)
    n, c = 400, 4
    labels = rng.integers(0, c, n)
    a_rows = np.arange(n) < n // 2
    a, b = rng.normal(scale=0.3, size=(n, c)), rng.normal(scale=0.3, size=(n, c))
    a[a_rows, labels[a_rows]] += 6.0
    b[~a_rows, labels[~a_rows]] += 6.0
    fitted = fit_blend("max_confidence", ["a", "b"], [a, b], labels)
    probs = fitted.predict_proba([a, b])
    ta, tb = fitted.temperatures
    expected = np.where(a_rows[:, None], softmax(a / ta), softmax(b / tb))
    np.testing.assert_allclose(probs, expected)
    assert np.all(probs.argmax(axis=1) == labels)


def test_calibrated_max_confidence_beats_raw_on_an_overconfident_model():
    """max_confidence_raw trusts a model's huge logits; calibrating first picks the more reliable model instead."""
    rng = np.random.default_rng(4)
    n, c = 2000, 4
    labels = rng.integers(0, c, n)
    guess = np.where(rng.random(n) < 0.5, labels, (labels + 1) % c)  # right half the time, logits of 20
    loud, quiet = np.zeros((n, c)), informative(rng, labels, c, 4.0)  # quiet: ~95% right with modest logits
    loud[np.arange(n), guess] = 20.0
    raw = fit_blend("max_confidence_raw", ["loud", "quiet"], [loud, quiet], labels)
    assert raw.temperatures == (1.0, 1.0)
    np.testing.assert_allclose(raw.predict_proba([loud, quiet]), softmax(loud))  # loud's max logit always wins
    acc = {m: metrics(nested_cv_proba(m, ["loud", "quiet"], [loud, quiet], labels), labels)["accuracy"]
           for m in ("max_confidence_raw", "max_confidence")}  # fmt: skip
    assert acc["max_confidence_raw"] < 0.6 < 0.9 < acc["max_confidence"]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "single"])
def test_nested_cv_never_predicts_a_row_with_a_blend_fitted_on_it(method, monkeypatch):
    """Every row is predicted exactly once, by a blend whose fitting rows exclude it; output is (N, C) and sums to 1."""
    logits, labels = two_models(n=120, c=3)
    row_key = lambda a, b: a.tobytes() + b.tobytes()  # noqa: E731  (continuous logits make each row unique)
    predicted: list[bytes] = []

    class Spy:
        def __init__(self, inner: FittedBlend, fit_rows: set[bytes]):
            self.inner, self.fit_rows = inner, fit_rows

        def predict_proba(self, parts):
            rows = [row_key(a, b) for a, b in zip(*parts)]
            assert not self.fit_rows.intersection(rows), "a row was predicted by a blend fitted on it"
            predicted.extend(rows)
            return self.inner.predict_proba(parts)

    real_fit = ensemble.fit_blend

    def spy_fit(method, models, parts, labels, **kw):
        return Spy(real_fit(method, models, parts, labels, **kw), {row_key(a, b) for a, b in zip(*parts)})

    monkeypatch.setattr(ensemble, "fit_blend", spy_fit)
    probs = nested_cv_proba(method, ["a", "b"], logits, labels)
    assert sorted(predicted) == sorted(row_key(a, b) for a, b in zip(*logits))
    assert probs.shape == (120, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_nested_cv_reduces_folds_to_the_rarest_class():
    """With a class of only 3 rows nested CV still runs (3 folds), and a class of 1 row does not crash it."""
    logits, labels = two_models(n=60, c=3)
    labels = labels.copy()
    labels[labels == 2] = 0
    labels[:3] = 2
    probs = nested_cv_proba("stacking", ["a", "b"], logits, labels)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    labels[1:3] = 1  # class 2 now has a single row: it is absent from the fold that predicts it
    np.testing.assert_allclose(nested_cv_proba("mean_logits", ["a", "b"], logits, labels).sum(axis=1), 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_fitted_blend_round_trips_through_json(method):
    """to_dict -> json -> from_dict gives an equal blend with bit-identical predict_proba, for every method."""
    logits, labels = two_models()
    models = ["a", "b"]
    if method == "single":
        logits, models = logits[:1], models[:1]
    fitted = fit_blend(method, models, logits, labels)
    restored = FittedBlend.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert restored == fitted
    assert restored.to_dict() == fitted.to_dict()
    np.testing.assert_array_equal(restored.predict_proba(logits), fitted.predict_proba(logits))
    np.testing.assert_allclose(fitted.predict_proba(logits).sum(axis=1), 1.0)


def test_stacking_corrects_a_systematically_biased_model():
    """A model that swaps two classes misleads the mean; stacking learns the swap and does clearly better."""
    rng = np.random.default_rng(5)
    n, c = 1500, 4
    labels = rng.integers(0, c, n)
    swapped = informative(rng, labels, c, 3.0)[:, [1, 0, 2, 3]]  # says 1 when it is 0 and vice versa
    weak = informative(rng, labels, c, 1.0)
    acc = {m: metrics(nested_cv_proba(m, ["swapped", "weak"], [swapped, weak], labels), labels)["accuracy"]
           for m in ("mean_probability", "stacking")}  # fmt: skip
    assert acc["stacking"] >= acc["mean_probability"] + 0.1


def test_stacking_reproduces_sklearn_and_handles_absent_classes():
    """Stored coefficients give sklearn's probabilities; classes absent from fitting get 0 but keep their column."""
    logits, labels = two_models(n=200, c=4)
    fitted = fit_blend("stacking", ["a", "b"], logits, labels, seed=7)
    x = np.concatenate([np.maximum(np.log(softmax(z / t)), np.log(1e-12)) for z, t in zip(logits, fitted.temperatures)],
                       axis=1)  # fmt: skip
    lr = LogisticRegression(C=1.0, max_iter=1000, random_state=7).fit(x, labels)
    np.testing.assert_allclose(fitted.predict_proba(logits), lr.predict_proba(x), atol=1e-10)
    for present in ([0, 1, 3], [1, 2], [3]):  # multinomial, binary (sklearn keeps one row), a single class
        rows = np.isin(labels, present)
        sub = fit_blend("stacking", ["a", "b"], [z[rows] for z in logits], labels[rows])
        probs = sub.predict_proba(logits)
        assert probs.shape == (200, 4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        absent = [k for k in range(4) if k not in present]
        assert np.all(probs[:, absent] == 0)
        if len(present) > 1:
            assert np.mean(probs[rows].argmax(axis=1) == labels[rows]) > 0.7


def test_bad_inputs_raise_foldwise_error():
    """Unknown method or metric, 'single' with two models, bad shapes, labels or NaN logits are user errors."""
    logits, labels = two_models(n=50, c=3)
    cases = [
        (("median", ["a", "b"], logits, labels), "unknown blend method 'median'"),
        (("single", ["a", "b"], logits, labels), "exactly one model"),
        (("mean_logits", ["a", "b"], [logits[0], logits[1][:40]], labels), r"\(N, C\)"),
        (("mean_logits", ["a"], logits, labels), "one \\(N, C\\) array per model"),
        (("mean_logits", ["a", "b"], logits, labels + 1), r"\[0, 3\)"),
        (("mean_logits", ["a", "b"], [logits[0], np.full_like(logits[1], np.nan)], labels), r"\['b'\].*NaN"),
    ]
    for args, message in cases:
        with pytest.raises(FoldwiseError, match=message):
            fit_blend(*args)
    with pytest.raises(FoldwiseError, match="metric 'f1': choose one of accuracy, log_loss, macro_f1"):
        fit_blend("greedy", ["a", "b"], logits, labels, metric="f1")
    fitted = fit_blend("mean_logits", ["a", "b"], logits, labels)
    with pytest.raises(FoldwiseError, match="one \\(N, C\\) array per model"):
        fitted.predict_proba(logits[:1])
    with pytest.raises(FoldwiseError, match="refit"):
        FittedBlend.from_dict({"method": "weighted", "models": ["a"], "temperatures": [1.0]})


def test_metrics_top5_and_calibration():
    """top5 is None below 10 classes; ECE is small for calibrated probabilities and large for overconfident ones."""
    rng = np.random.default_rng(6)
    z = rng.normal(size=(20000, 10)) * 2
    probs = softmax(z)
    labels = sample_labels(rng, probs)  # labels drawn from probs: calibrated by construction
    m = metrics(probs, labels)
    assert set(m) == {"accuracy", "top5", "log_loss", "ece"}
    assert m["top5"] >= m["accuracy"] and m["ece"] < 0.02
    assert expected_calibration_error(softmax(z * 4), labels) > 0.2
    assert metrics(probs[:, :3] / probs[:, :3].sum(axis=1, keepdims=True), labels % 3)["top5"] is None
    conf, acc, count = reliability_curve(probs, labels)
    assert count.sum() == 20000 and np.all(count > 0) and np.all((conf > 0) & (conf <= 1))
    full = count >= 1000  # sparse bins are dominated by sampling noise
    np.testing.assert_allclose(acc[full], conf[full], atol=0.03)
    assert metrics(np.eye(3)[[0, 1, 2]], np.array([1, 1, 2]))["log_loss"] < 40  # a hard zero is clipped, not inf


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_more_rows():
    """The bootstrap interval contains the observed accuracy and narrows when there are more rows."""
    rng = np.random.default_rng(7)
    small, large = rng.random(200) < 0.8, rng.random(5000) < 0.8
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)


def test_mcnemar_p():
    """McNemar is tiny for a clear winner, 1.0 for identical correctness, and symmetric."""
    rng = np.random.default_rng(8)
    b = rng.random(500) < 0.7
    a = b | (rng.random(500) < 0.5)  # a fixes about half of b's mistakes and breaks none
    assert mcnemar_p(a, b) < 1e-6
    assert mcnemar_p(a, b) == pytest.approx(mcnemar_p(b, a))
    assert mcnemar_p(b, b) == 1.0
