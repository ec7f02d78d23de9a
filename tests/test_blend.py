"""Unit tests for foldwise.blend: softmax, ensembles, OOF loading/alignment and candidate ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foldwise.blend import (
    OOF,
    apply_method,
    check_aligned,
    compare,
    load_oof,
    max_confidence,
    mean_probability,
    metrics,
    softmax,
)
from foldwise.errors import FoldwiseError

A = np.array([[0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]])
B = np.array([[0.1, 0.5, 0.4], [0.1, 0.9, 0.0], [0.05, 0.9, 0.05]])


def test_max_confidence_picks_most_confident_model_per_row():
    """max_confidence takes, row by row, the whole probability row of the model with the highest top probability."""
    out = max_confidence([A, B])
    np.testing.assert_array_equal(out, np.stack([A[0], B[1], B[2]]))
    np.testing.assert_array_equal(max_confidence([B, A]), out)  # model order does not matter


def test_max_confidence_three_models():
    """max_confidence works for more than two models (argmax over the model axis, not a pairwise comparison)."""
    C = np.array([[0.05, 0.05, 0.9], [0.3, 0.3, 0.4], [0.3, 0.4, 0.3]])
    np.testing.assert_array_equal(max_confidence([A, B, C]), np.stack([C[0], B[1], B[2]]))


def test_mean_probability_averages():
    """mean_probability is the element-wise mean of the models' probabilities."""
    np.testing.assert_allclose(mean_probability([A, B]), (A + B) / 2)
    C = np.full_like(A, 1 / 3)
    np.testing.assert_allclose(mean_probability([A, B, C]), (A + B + C) / 3)
    # Row 2: A alone says class 2 (0.8), but the average [.075, .5, .425] says class 1.
    assert mean_probability([A, B]).argmax(1).tolist() == [0, 1, 1]


def test_apply_method_dispatch():
    """apply_method runs the named ensemble, 'single' needs exactly one model, unknown names raise."""
    np.testing.assert_allclose(apply_method("mean_probability", [A, B]), (A + B) / 2)
    np.testing.assert_array_equal(apply_method("max_confidence", [A, B]), max_confidence([A, B]))
    np.testing.assert_array_equal(apply_method("single", [A]), A)
    with pytest.raises(FoldwiseError, match="exactly one model"):
        apply_method("single", [A, B])
    with pytest.raises(FoldwiseError, match="unknown blend method 'median'"):
        apply_method("median", [A, B])


def test_softmax_rows_sum_to_one_and_match_definition():
    """softmax: rows sum to 1 and equal exp(x)/sum(exp(x)) for moderate logits."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    p = softmax(logits)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    e = np.exp(logits.astype(np.float64))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_softmax_stable_for_large_logits():
    """softmax does not overflow: logits of 1000 give finite probabilities (max subtracted first)."""
    p = softmax(np.array([[1000.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0], [-1000.0, -1001.0, -1000.0]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0], atol=1e-300)
    e = np.exp([0.0, -1.0, 0.0])
    np.testing.assert_allclose(p[2], e / e.sum())


def oof(name: str, logits, labels, ids=None) -> OOF:
    logits = np.asarray(logits, dtype=np.float32)
    ids = np.array(ids if ids is not None else [f"id{i:02d}" for i in range(len(logits))])
    return OOF(name=name, ids=ids, logits=logits, labels=np.asarray(labels))


def test_compare_ranks_by_accuracy_and_lists_every_candidate():
    """compare has one row per single model plus both ensembles, sorted by accuracy then log loss."""
    labels = np.array([0, 1, 2, 0, 1, 2])
    good = np.eye(3)[labels] * 6  # confidently right everywhere
    bad = np.eye(3)[(labels + 1) % 3] * 1.0  # mildly wrong everywhere
    bad[:3] = np.eye(3)[labels[:3]] * 1.0  # ... except on the first half: 50% accuracy
    rows = compare([oof("good", good, labels), oof("bad", bad, labels)])
    assert sorted(r["candidate"] for r in rows) == ["bad", "good", "max_confidence", "mean_probability"]
    by_name = {r["candidate"]: r for r in rows}
    assert by_name["good"]["method"] == "single" and by_name["good"]["models"] == ["good"]
    assert by_name["mean_probability"]["models"] == ["good", "bad"]
    assert by_name["good"]["accuracy"] == 1.0
    assert by_name["bad"]["accuracy"] == 0.5
    assert rows[-1]["candidate"] == "bad"
    keys = [(-r["accuracy"], r["log_loss"]) for r in rows]
    assert keys == sorted(keys)
    # The single confident model has a lower log loss than its average with a weak one, so it ranks first.
    assert rows[0]["candidate"] in {"good", "max_confidence"}
    assert by_name["good"]["log_loss"] < by_name["mean_probability"]["log_loss"]
    expected = metrics(softmax(bad.astype(np.float32)), labels)
    assert by_name["bad"]["log_loss"] == pytest.approx(expected["log_loss"])


def test_compare_single_model_has_no_ensembles():
    """With one experiment compare reports only that model."""
    labels = np.array([0, 1])
    rows = compare([oof("only", np.eye(2)[labels], labels)])
    assert [r["candidate"] for r in rows] == ["only"]


def test_check_aligned_rejects_different_ids():
    """Blending OOFs over different rows (other ids or other counts) raises FoldwiseError."""
    labels = [0, 1, 0]
    ref = oof("a", np.zeros((3, 2)), labels, ids=["x", "y", "z"])
    check_aligned([ref, oof("b", np.ones((3, 2)), labels, ids=["x", "y", "z"])])
    with pytest.raises(FoldwiseError, match="OOF rows differ"):
        check_aligned([ref, oof("b", np.zeros((3, 2)), labels, ids=["x", "y", "w"])])
    with pytest.raises(FoldwiseError, match="a covers 3 ids, b covers 2"):
        check_aligned([ref, oof("b", np.zeros((2, 2)), labels[:2], ids=["x", "y"])])
    with pytest.raises(FoldwiseError, match="OOF rows differ"):
        compare([ref, oof("b", np.zeros((3, 2)), labels, ids=["x", "z", "y"])])


def test_check_aligned_rejects_different_labels():
    """Same ids but different labels (the folds changed) raises FoldwiseError."""
    ref = oof("a", np.zeros((3, 2)), [0, 1, 0], ids=["x", "y", "z"])
    with pytest.raises(FoldwiseError, match="OOF labels differ between a and b"):
        check_aligned([ref, oof("b", np.zeros((3, 2)), [0, 1, 1], ids=["x", "y", "z"])])


def write_oof(path: Path, ids, logits, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), logits=np.asarray(logits, dtype=np.float32), labels=np.asarray(labels))


def test_load_oof_concatenates_folds_sorted_by_id(tmp_path):
    """load_oof joins every fold*/oof.npz and sorts rows by id, keeping logits and labels with their ids."""
    exp = tmp_path / "cnn"
    # Row i's logits are [value, -value] and its label encodes the id, so misalignment shows.
    write_oof(exp / "fold0" / "oof.npz", ["d", "a"], [[4, -4], [1, -1]], [4, 1])
    write_oof(exp / "fold1" / "oof.npz", ["c", "b"], [[3, -3], [2, -2]], [3, 2])
    write_oof(exp / "full" / "oof.npz", ["zz"], [[9, -9]], [9])  # not a fold: ignored
    got = load_oof(exp)
    assert got.name == "cnn"
    assert got.ids.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(got.logits[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(got.labels, [1, 2, 3, 4])
    assert got.logits.shape == (4, 2)


def test_load_oof_rejects_id_in_two_folds(tmp_path):
    """An id present in two folds' oof.npz (folds changed between runs) raises FoldwiseError."""
    exp = tmp_path / "cnn"
    write_oof(exp / "fold0" / "oof.npz", ["a", "b"], np.zeros((2, 2)), [0, 1])
    write_oof(exp / "fold1" / "oof.npz", ["c", "a"], np.zeros((2, 2)), [0, 0])
    with pytest.raises(FoldwiseError, match="appears in two folds"):
        load_oof(exp)


def test_load_oof_without_files(tmp_path):
    """An experiment with no fold*/oof.npz raises FoldwiseError telling the user to train it."""
    (tmp_path / "cnn").mkdir()
    with pytest.raises(FoldwiseError, match="no fold\\*/oof.npz"):
        load_oof(tmp_path / "cnn")
