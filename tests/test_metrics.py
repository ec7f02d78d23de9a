"""The competition's metrics on synthetic probabilities, against scikit-learn's own numbers (or a plain loop where
scikit-learn has no such metric), and the submission formats they bring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, log_loss, roc_auc_score, top_k_accuracy_score

from foldwise.blending.formats import submission_frame, validate_submission
from foldwise.blending.metrics import metric_interval, paired_p
from foldwise.data.competition import Competition, SubmissionFormat
from foldwise.data.csvfiles import submission_kind
from foldwise.errors import FoldwiseError
from foldwise.metrics import metric


def synthetic(n: int = 400, c: int = 5, seed: int = 0):
    """Labels and probabilities that are informative but imperfect."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def test_each_metric_matches_scikit_learn():
    probs, labels = synthetic()
    predicted = probs.argmax(1)
    assert metric("accuracy")(probs, labels) == pytest.approx(accuracy_score(labels, predicted))
    assert metric("log_loss")(probs, labels) == pytest.approx(log_loss(labels, probs))
    assert metric("macro_f1")(probs, labels) == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert metric("qwk")(probs, labels) == pytest.approx(cohen_kappa_score(labels, predicted, weights="quadratic"))
    assert metric("top_3")(probs, labels) == pytest.approx(top_k_accuracy_score(labels, probs, k=3))
    assert metric("roc_auc")(probs, labels) == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    binary = probs[:, :2] / probs[:, :2].sum(1, keepdims=True)
    two = labels % 2
    assert metric("roc_auc")(binary, two) == pytest.approx(roc_auc_score(two, binary[:, 1]))


def test_map_at_k_is_the_mean_reciprocal_rank_within_k():
    """MAP@k with one true label per row, by a plain loop (scikit-learn has none)."""
    probs, labels = synthetic(c=8)
    expected = []
    for p, y in zip(probs, labels):
        ranking = list(np.argsort(-p))[:5]
        expected.append(1 / (ranking.index(y) + 1) if y in ranking else 0.0)
    assert metric("map_at_5")(probs, labels) == pytest.approx(np.mean(expected))
    assert metric("map_at_5").row_scores(probs, labels) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["accuracy", "log_loss", "top_3", "map_at_3"])
def test_per_row_terms_average_to_the_metric_and_its_bootstrap_uses_them(name):
    """A per-row metric's row terms average to sklearn's number (log loss with a confidently wrong row too), so the
    bootstrap resamples row terms; the paired difference of two candidates is that of their row terms."""
    probs, labels = synthetic(c=6)
    probs[0] = np.eye(6)[(labels[0] + 1) % 6]  # all mass on a wrong class: a finite, large loss
    scored = metric(name)
    assert scored.per_row and scored.row_scores(probs, labels).mean() == pytest.approx(scored(probs, labels))
    if name == "log_loss":
        assert scored(probs, labels) == pytest.approx(log_loss(labels, np.clip(probs, 1e-15, 1), labels=range(6)))
    worse = probs.copy()
    worse[::3] = np.roll(probs[::3], 1, axis=1)  # a third of the rows' classes scrambled
    assert paired_p(probs, worse, labels, scored) < 0.05
    lo, hi = metric_interval(probs, labels, scored)
    assert lo <= scored(probs, labels) <= hi


def test_metric_names_and_directions():
    assert metric("log_loss").higher_is_better is False and metric("qwk").higher_is_better
    assert metric("map_at_12").k == 12 and metric("top_1").per_row and not metric("roc_auc").per_row
    with pytest.raises(FoldwiseError, match="metric 'f2': choose one of"):
        metric("f2")
    with pytest.raises(FoldwiseError, match="choose one of"):
        metric("map_at_0")


def test_intervals_and_paired_tests_follow_the_metric():
    """A whole-set metric's bootstrap interval holds its value; a clearly worse candidate is significantly worse by
    a paired bootstrap, an identical one is not."""
    probs, labels = synthetic(n=600)
    scored = metric("macro_f1")
    lo, hi = metric_interval(probs, labels, scored, seed=1)
    assert lo <= scored(probs, labels) <= hi and hi - lo < 0.15
    noisy = 0.3 * probs + 0.7 * np.random.default_rng(1).dirichlet(np.ones(5), len(labels))
    assert paired_p(noisy, probs, labels, scored, seed=1) < 0.05
    assert paired_p(probs, probs, labels, scored) == 1.0


def comp_with(sample: pd.DataFrame, classes, tmp_path, metric_name: str) -> Competition:
    path = tmp_path / "sample_submission.csv"
    sample.to_csv(path, index=False)
    fmt = SubmissionFormat(id_column="id", label_column=sample.columns[1], sample_path=path)
    chosen = submission_kind(fmt, tuple(classes), metric(metric_name))
    return Competition(
        name="c",
        root=tmp_path,
        layout="csv",
        classes=tuple(classes),
        train_ids=("a",),
        train_labels=(0,),
        train_images=(tmp_path,),
        test_ids=tuple(sample["id"]),
        test_images=(tmp_path,) * len(sample),
        submission=chosen,
        metric=metric_name,
    )


def test_binary_auc_submission_holds_the_positive_probability(tmp_path):
    """`id,target` for a binary AUC competition: the probability of the positive (second) class, checked in [0, 1]."""
    comp = comp_with(pd.DataFrame({"id": ["x", "y"], "target": ["0", "0"]}), ["0", "1"], tmp_path, "roc_auc")
    assert comp.submission.kind == "positive_probability"
    frame = submission_frame(comp, np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert frame["target"].tolist() == [0.1, 0.8]
    sample = pd.read_csv(tmp_path / "sample_submission.csv", dtype=str)
    validate_submission(frame, sample, comp.classes, kind="positive_probability")
    with pytest.raises(FoldwiseError, match="within \\[0, 1\\]"):
        validate_submission(frame.assign(target=[1.5, 0.2]), sample, comp.classes, kind="positive_probability")
    fractions = comp_with(pd.DataFrame({"id": ["x"], "target": ["0.5"]}), ["0", "1"], tmp_path, "accuracy")
    assert fractions.submission.kind == "positive_probability"  # the sample's fractions say so, whatever the metric


def test_map_at_k_submission_lists_k_labels(tmp_path):
    """A sample whose rows list several labels asks for the top k, space-separated, best first."""
    classes = ["a", "b", "c", "d"]
    comp = comp_with(pd.DataFrame({"id": ["x", "y"], "label": ["a b c", "a b c"]}), classes, tmp_path, "map_at_3")
    assert (comp.submission.kind, comp.submission.k) == ("top_k", 3)
    frame = submission_frame(comp, np.array([[0.1, 0.5, 0.3, 0.1], [0.7, 0.1, 0.05, 0.15]]))
    assert frame["label"].tolist() == ["b c a", "a d b"]
    sample = pd.read_csv(tmp_path / "sample_submission.csv", dtype=str)
    validate_submission(frame, sample, classes, kind="top_k", k=3)
    with pytest.raises(FoldwiseError, match="3 distinct label"):
        validate_submission(frame.assign(label=["b b a", "a d b"]), sample, classes, kind="top_k", k=3)
