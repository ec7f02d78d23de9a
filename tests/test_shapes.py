"""Competition shapes beyond balanced classes scored by accuracy: post-processing fitted on OOF rows, groups that
stay in one fold, class imbalance, and the binary / ordinal / grouped demos run end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import tiny_recipe
from foldwise.blending.postprocess import Decision, evaluate, fit
from foldwise.data.folds import merged_groups
from foldwise.metrics import metric

REPO = Path(__file__).resolve().parents[1]


def test_threshold_lifts_f1_of_a_shifted_binary_model():
    """A model whose positive probabilities run low: a fitted threshold beats 0.5 on rows it was not fitted on."""
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.15).astype(int)
    p1 = np.clip(0.25 * labels + rng.normal(0.15, 0.08, len(labels)), 0.001, 0.999)
    probs = np.c_[1 - p1, p1]
    result = evaluate(probs, labels, metric("macro_f1"))
    assert result["kind"] == "threshold" and result["used"] and result["gain"] > 0.1 and result["significant"]
    assert result["decision"]["params"][0] < 0.5


def test_qwk_cut_points_beat_argmax_on_grades():
    """Ordinal grades with probabilities smeared towards the middle: cut points on the expected grade win."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 3000)
    centre = 0.6 * labels + 0.4 * 2 + rng.normal(0, 0.5, len(labels))
    probs = np.exp(-((np.arange(5)[None, :] - centre[:, None]) ** 2))
    probs /= probs.sum(1, keepdims=True)
    scored = metric("qwk")
    decision = fit("qwk_cuts", probs, labels, scored)
    assert scored(decision.scored_probs(probs), labels) > scored(probs, labels)
    assert list(decision.params) == sorted(decision.params)
    assert evaluate(probs, labels, scored)["used"]


def test_qwk_cut_points_reach_grades_squeezed_into_a_narrow_band():
    """Expected grades all between 2.5 and 3.5: the search starts from the labels' class shares, not from rounding
    (0.5, 1.5, ...), whose narrowing windows stopped the low cuts short of the band (QWK 0.777; an even grid of 60
    points per pass 0.817)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 3000)
    centre = 0.25 * labels + 2.5 + rng.normal(0, 0.25, len(labels))
    probs = np.exp(-((np.arange(5)[None, :] - centre[:, None]) ** 2))
    probs /= probs.sum(1, keepdims=True)
    scored = metric("qwk")
    assert scored(fit("qwk_cuts", probs, labels, scored).scored_probs(probs), labels) > 0.81


def test_prior_correction_lowers_log_loss_under_a_prior_shift():
    rng = np.random.default_rng(2)
    labels = rng.choice(3, 3000, p=[0.7, 0.2, 0.1])
    probs = np.full((3000, 3), 0.1) + 0.7 * np.eye(3)[labels] * (rng.random(3000) < 0.6)[:, None]
    probs /= probs.sum(1, keepdims=True)
    result = evaluate(probs, labels, metric("log_loss"))
    assert result["kind"] == "prior" and result["used"] and result["after"] < result["before"]
    assert Decision("prior", tuple(result["decision"]["params"])).probs(probs).sum(1) == pytest.approx(1.0)


def test_no_post_processing_for_accuracy_over_many_classes():
    probs = np.eye(4)[np.arange(40) % 4]
    assert evaluate(probs, np.arange(40) % 4, metric("accuracy")) == {}


def test_named_and_duplicate_groups_join():
    """Rows linked by a patient id or by a duplicate pair stay together: the union of both groupings."""
    patients = ["p1", "p1", "p2", "p3", "p3", "p4"]
    duplicates = [0, 1, 2, 2, 3, 4]  # row 3 (p3) duplicates row 2 (p2)
    groups = merged_groups(duplicates, patients)
    assert groups[0] == groups[1] and groups[2] == groups[3] == groups[4] and len(set(groups)) == 3


def test_group_column_keeps_each_group_in_one_fold(tmp_path):
    from foldwise.data.demo import build_grouped
    from foldwise.data.folds import make_folds
    from foldwise.data.formats import load_competition

    comp = load_competition(build_grouped(tmp_path / "g", copies=2))
    df = make_folds(comp, k=5)
    assert "group" in df and df.groupby(pd.Series(comp.train_groups))["fold"].nunique().max() == 1


def test_balanced_sampler_and_class_weights(tiny_comp):
    """data.sampler balanced draws every class about equally from an imbalanced fold; optim.class_weights balanced
    weighs the loss n / (C * class size)."""
    from foldwise.training.engine import Trainer, TrainingSet
    from foldwise.training.inputs import CachedFeatures

    labels = torch.tensor([0] * 90 + [1] * 10)
    rows = torch.arange(100)
    data = TrainingSet(CachedFeatures(torch.zeros(100, 4), torch.device("cpu")), labels, rows, 2, rows)
    recipe = tiny_recipe(data={"sampler": "balanced"}, optim={"class_weights": "balanced"})
    trainer = Trainer(torch.nn.Linear(4, 2), recipe, data, 1, False)
    drawn = labels[trainer.epoch_order(torch.Generator().manual_seed(0))]
    assert 0.35 < drawn.float().mean() < 0.65
    assert trainer.class_weights.tolist() == pytest.approx([100 / 180, 100 / 20])


def submit(tmp_path: Path, demo: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`bash submit.sh` on a freshly built demo with a tiny recipe (2 folds)."""
    subprocess.run(["foldwise", "demo", demo, str(tmp_path / "input" / demo)], check=True, capture_output=True)
    data = tiny_recipe().to_dict()
    data.pop("name")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    env = dict(os.environ, ROOT=str(tmp_path), K="2")
    result = subprocess.run(
        ["bash", str(REPO / "submit.sh"), str(tmp_path / "input" / demo), str(tmp_path / "tiny.yaml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2500:] + result.stderr[-2500:]
    return result, tmp_path / "output" / demo


@pytest.mark.slow
def test_binary_demo_end_to_end(tmp_path):
    """5% positives, ROC-AUC, `id,target` submission with probabilities, scored by AUC against the key."""
    result, out = submit(tmp_path, "binary")
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == ["id", "target"] and submission["target"].between(0, 1).all()
    assert "== score against" in result.stdout and "roc_auc " in result.stdout.split("== score against")[-1]
    assert (
        "| roc_auc |" in (out / "blend" / "report.md").read_text().split("\n\n## Data")[0] or "roc_auc" in result.stdout
    )


@pytest.mark.slow
def test_ordinal_demo_end_to_end(tmp_path):
    """Grades 0-4 scored by QWK: the report says whether the fitted cut points beat argmax, and what is submitted."""
    result, out = submit(tmp_path, "ordinal")
    report = (out / "blend" / "report.md").read_text()
    assert "Post-processing: cut points on the expected grade" in report
    assert "The submission uses it" in report or "does not use it (argmax)" in report
    grades = pd.read_csv(out / "submission.csv", dtype=str)["grade"]
    assert set(grades) <= {"0", "1", "2", "3", "4"}


@pytest.mark.slow
def test_grouped_demo_end_to_end(tmp_path):
    """Groups of augmented copies stay inside one fold (the folds csv's group column follows them)."""
    result, out = submit(tmp_path, "grouped")
    folds = pd.read_csv(tmp_path / "folds" / "grouped.csv", dtype=str)
    groups = pd.read_csv(tmp_path / "input" / "grouped" / "train.csv", dtype=str).set_index("id")["group"]
    assert folds.assign(named=folds["id"].map(groups)).groupby("named")["fold"].nunique().max() == 1
    assert (out / "submission.csv").exists()
    report = (out / "blend" / "report.md").read_text()
    folds_part = report[report.index("## Folds") :].split("\n## ")[0]
    assert "Groups (the group column joined with duplicate groups)" in folds_part
    assert "largest class-share gap" in folds_part
