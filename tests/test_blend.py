"""Blend orchestration: OOF loading, identical rows, nested-CV comparison, choice and blend.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foldwise.blending.blend import OOF, candidates, check_aligned, compare, load_oof, write_blend
from foldwise.blending.ensemble import FittedBlend
from foldwise.errors import FoldwiseError


def synthetic_oofs(n: int = 600, classes: int = 10, seed: int = 0) -> list[OOF]:
    """Two informative models with independent errors and one pure-noise model, on the same rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    ids = np.array([f"r{i:05d}" for i in range(n)])
    folds = np.arange(n) % 5

    def model(strength: float) -> np.ndarray:
        logits = rng.normal(0, 1, (n, classes))
        logits[np.arange(n), labels] += strength
        return logits.astype(np.float32)

    return [OOF("a", ids, model(2.0), labels, folds), OOF("b", ids, model(2.0), labels, folds),
            OOF("noise", ids, model(0.0), labels, folds)]  # fmt: skip


def write_fold(exp_dir, fold: int, ids, logits, labels) -> None:
    (exp_dir / f"fold{fold}").mkdir(parents=True, exist_ok=True)
    np.savez(exp_dir / f"fold{fold}" / "oof.npz", ids=np.array(ids), logits=logits, labels=np.array(labels))


def test_load_oof_concatenates_folds_sorted_by_id_with_fold_numbers(tmp_path):
    """fold*/oof.npz are merged, sorted by id, and each row remembers its fold."""
    write_fold(tmp_path / "m", 0, ["c", "a"], np.eye(2, dtype=np.float32), [1, 0])
    write_fold(tmp_path / "m", 1, ["b"], np.ones((1, 2), dtype=np.float32), [1])
    oof = load_oof(tmp_path / "m")
    assert oof.ids.tolist() == ["a", "b", "c"]
    assert oof.labels.tolist() == [0, 1, 1] and oof.folds.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(oof.logits[0], [0, 1])


def test_load_oof_rejects_an_id_in_two_folds_and_missing_files(tmp_path):
    """Overlapping folds mean the folds file changed under the runs; no oof.npz means nothing was trained."""
    write_fold(tmp_path / "m", 0, ["a"], np.ones((1, 2), dtype=np.float32), [0])
    write_fold(tmp_path / "m", 1, ["a"], np.ones((1, 2), dtype=np.float32), [0])
    with pytest.raises(FoldwiseError, match="two folds"):
        load_oof(tmp_path / "m")
    with pytest.raises(FoldwiseError, match="train it first"):
        load_oof(tmp_path / "empty")


def test_check_aligned_requires_identical_rows():
    """Models trained on different folds cannot be compared row by row."""
    a, b, _ = synthetic_oofs(50)
    short = OOF("short", a.ids[:40], a.logits[:40], a.labels[:40], a.folds[:40])
    with pytest.raises(FoldwiseError, match="OOF rows differ"):
        check_aligned([a, short])
    check_aligned([a, b])


def test_candidates_are_every_single_model_then_every_method():
    """One model: just itself; several: each alone plus all ensemble methods over all of them."""
    assert candidates(["a"]) == [("a", "single", ["a"])]
    rows = candidates(["a", "b"])
    assert [r[0] for r in rows[:2]] == ["a", "b"]
    assert {"max_confidence_raw", "max_confidence", "mean_probability", "stacking", "greedy"} <= {r[1] for r in rows}


def test_compare_chooses_a_blend_at_least_as_good_as_the_best_single_and_tests_it():
    """Two independent informative models blend better than either; the table carries CIs and McNemar p."""
    result = compare(synthetic_oofs(), metric="accuracy", seed=0)
    rows = result.rows
    best_single = max(r["accuracy"] for r in rows if r["method"] == "single")
    assert rows[0]["accuracy"] >= best_single
    assert rows[0]["method"] != "single"
    for r in rows:
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert 0.0 <= r["p_vs_best_single"] <= 1.0
    noise = next(r for r in rows if r["candidate"] == "noise")
    assert noise["significant"] and noise["accuracy"] < 0.2
    assert result.fitted.method == rows[0]["method"]
    assert set(result.probs) == {r["candidate"] for r in rows}


def test_compare_by_log_loss_ranks_by_log_loss():
    """--metric log_loss orders candidates by log loss."""
    rows = compare(synthetic_oofs(300), metric="log_loss").rows
    assert [r["log_loss"] for r in rows] == sorted(r["log_loss"] for r in rows)
    with pytest.raises(FoldwiseError, match="metric"):
        compare(synthetic_oofs(50), metric="f1")


def test_write_blend_round_trips_the_fitted_blend(tmp_path):
    """blend.json holds the chosen fitted blend (reloadable) and every candidate; probabilities are saved too."""
    result = compare(synthetic_oofs(300))
    choice = write_blend(result, [str(c) for c in range(10)], tmp_path, metric="accuracy", seed=0)
    saved = json.loads((tmp_path / "blend.json").read_text())
    assert saved == json.loads(json.dumps(choice))
    assert FittedBlend.from_dict(saved["blend"]) == result.fitted
    arrays = np.load(tmp_path / "oof_candidates.npz")
    assert arrays["ids"].tolist() == result.ids.tolist()
    assert {k.split("/", 1)[1] for k in arrays.files if k.startswith("probs/")} == set(result.probs)
