"""The warm full retrain: when a time budget has no room for a full retrain, one that starts from fold 0's weights
with a shorter, gentler schedule shows the model the held-out rows; its identity, the planner's rung, the CLI."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_recipe
from foldwise.blending.submit import load_test_logits
from foldwise.budget import Plan, RecipeCost, full_seconds, make_plan, plan_table
from foldwise.cli import main
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError
from foldwise.training.runs import REFIT_LR_SCALE, REFIT_SHARE, plan_run
from foldwise.training.train import prepare, train_run


def test_a_warm_full_retrain_starts_from_the_fold_model_with_a_gentler_schedule(ready):
    comp, ws = ready
    recipe = tiny_recipe(optim={"epochs": 4})
    with pytest.raises(FoldwiseError, match="fold0/model.pt: missing.*--fold 0"):
        plan_run(comp, recipe, None, ws, warm_from=0)
    fold_dir = train_run(comp, recipe, 0, ws)
    plan = plan_run(comp, recipe, None, ws, warm_from=0)
    assert plan.recipe.optim.epochs == math.ceil(REFIT_SHARE * 4) and plan.name == "tiny full from fold0"
    assert plan.recipe.optim.lr == pytest.approx(recipe.optim.lr * REFIT_LR_SCALE)
    assert plan.meta["init_from"]["run"] == "fold0" and len(plan.meta["init_from"]["model_sha256"]) == 64
    fold_weights = torch.load(fold_dir / "model.pt", weights_only=False)["state_dict"]
    start = prepare(plan).model.state_dict()
    assert all(torch.equal(start[k], v) for k, v in fold_weights.items())  # the fold's weights, not a fresh init
    cold = prepare(plan_run(comp, recipe, None, ws)).model.state_dict()
    assert not all(torch.equal(cold[k], v) for k, v in fold_weights.items())

    full_dir = train_run(comp, recipe, None, ws, warm_from=0)
    config = yaml.safe_load((full_dir / "config.yaml").read_text())
    assert config["init_from"] == plan.meta["init_from"] and config["train_rows"] == 100
    assert config["epochs"] == 2 and "fold0's weights" in config["epochs_source"]
    _, source = load_test_logits(full_dir.parent, comp.test_ids)
    assert source == "full retrain from fold0's weights"

    mtime = (full_dir / "model.pt").stat().st_mtime_ns
    train_run(comp, recipe, None, ws, warm_from=0)  # finished: skipped
    assert (full_dir / "model.pt").stat().st_mtime_ns == mtime
    other_seed = replace(recipe, run=replace(recipe.run, seed=1))
    train_run(comp, other_seed, 0, ws, force=True)  # fold 0 trained again, to other weights
    with pytest.raises(FoldwiseError, match="fold0/model.pt, which has changed since"):
        load_test_logits(full_dir.parent, comp.test_ids)  # the submission would predict from old weights
    train_run(comp, recipe, None, ws, warm_from=0)  # the warm full retrain follows it
    assert (full_dir / "model.pt").stat().st_mtime_ns != mtime
    train_run(comp, recipe, None, ws)  # a rerun whose plan wants it cold: trained again, not refused
    assert "init_from" not in yaml.safe_load((full_dir / "config.yaml").read_text())
    train_run(comp, recipe, None, ws, warm_from=0)  # and back
    assert yaml.safe_load((full_dir / "config.yaml").read_text())["init_from"]["run"] == "fold0"


def test_a_fold_model_trained_again_after_the_warm_run_was_planned_is_refused(ready):
    """The digest config.yaml records is the one of the weights loaded: a fold retrained in between is an error."""
    comp, ws = ready
    recipe = tiny_recipe()
    train_run(comp, recipe, 0, ws)
    plan = plan_run(comp, recipe, None, ws, warm_from=0)
    train_run(comp, replace(recipe, run=replace(recipe.run, seed=1)), 0, ws, force=True)
    with pytest.raises(FoldwiseError, match="fold0/model.pt changed after tiny full from fold0 was planned"):
        prepare(plan)


def test_a_warm_start_refuses_a_fold_model_of_another_network(ready):
    comp, ws = ready
    train_run(comp, tiny_recipe(model={"kwargs": {"widths": [8, 16, 32]}}), 0, ws)
    with pytest.raises(FoldwiseError, match="another network.*--force"):
        plan_run(comp, tiny_recipe(), None, ws, warm_from=0)


def test_the_cli_trains_a_warm_full_retrain_and_refuses_what_it_cannot(ready, capsys):
    comp, ws = ready
    root, recipe = str(ws.root), tiny_recipe()
    path = ws.root / "tiny.yaml"
    data = recipe.to_dict()
    data.pop("name")
    path.write_text(yaml.safe_dump(data))
    args = ["--root", root, "train", str(comp.root), "-c", str(path)]
    assert main([*args, "--fold", "0", "--from-fold", "0"]) == 2
    assert "give it with --full" in capsys.readouterr().err
    assert main([*args, "--full", "--from-fold", "0"]) == 2
    assert "needs `foldwise train" in capsys.readouterr().err
    assert main([*args, "--full", "--from-fold", "9"]) == 2
    assert "has no fold [9]" in capsys.readouterr().err
    assert main([*args, "--fold", "0"]) == 0
    assert main([*args, "--full", "--from-fold", "0"]) == 0
    full = ws.run_dir(comp.name, "tiny", None)
    assert yaml.safe_load((full / "config.yaml").read_text())["init_from"]["run"] == "fold0"
    assert np.load(full / "test.npz")["logits"].shape == (len(comp.test_ids), 10)


def costs(epoch_seconds: float = 10.0) -> dict[str, RecipeCost]:
    """Recipes of 10 epochs; a fold epoch takes `epoch_seconds`, a full-retrain epoch 25% more; "f" is a classifier
    on cached features (its full retrain costs moments, and stays a cold one)."""
    made = {n: RecipeCost(n, 10, 1000.0, epoch_seconds, 5.0, 1.25 * epoch_seconds, 0.0) for n in ("a", "b")}
    return {**made, "f": RecipeCost("f", 30, 1000.0, 0.05, 1.0, 0.05, 20.0, grows=False)}


@pytest.mark.parametrize("folds", [[0], [0, 1, 2, 3, 4]])
def test_a_warm_full_retrain_comes_before_fold_0_alone(folds):
    """Fold 0 + the full retrain does not fit 90% of 590 s (546 s of 531 s); fold 0 + a warm full retrain of 3 epochs
    does (371 s), and its epochs are raised to the cap (15 fold, 5 warm: 521 s). With 500 s (450 s) the epochs rise
    to 12 (4 warm: 436 s; 13 would take 456 s); with 400 s (360 s) not even the warm rung fits, and fold 0 alone
    takes the room (13 epochs)."""
    warm = make_plan(costs(), ["a", "b", "f"], folds, 1000, 10.0, 590)
    assert (warm.folds, warm.full, warm.warm, warm.epochs["a"]) == ([0], True, ["a", "b"], 15)
    assert warm.reasons == [
        "fold 0, then a warm full retrain from its weights (a, b): a full one does not fit",
        "room to spare: more epochs (a 10 -> 15, b 10 -> 15)",
    ]
    assert warm.seconds["full retrain"] == pytest.approx(2 * (5 * 12.5 + 5) + (30 * 0.05 + 1.0))
    table = plan_table(warm, costs())
    assert "| a | 0 | 15 | 1,000 | 2.6 | 1.1 (from fold 0, 5 epochs) |" in table
    assert "| f | 0 | 30 | 1,000 | 0.0 | 0.0 |" in table  # cached features: a cold full retrain
    fewer = make_plan(costs(), ["a", "b", "f"], folds, 1000, 10.0, 500)
    assert (fewer.full, fewer.warm, fewer.epochs["a"], fewer.total) == (True, ["a", "b"], 12, pytest.approx(436.0))
    assert "(from fold 0, 4 epochs)" in plan_table(fewer, costs())
    alone = make_plan(costs(), ["a", "b", "f"], folds, 1000, 10.0, 400)
    assert (alone.full, alone.warm, alone.epochs["a"]) == (False, [], 13)
    roomy = make_plan(costs(), ["a", "b", "f"], folds, 1000, 10.0, 11 * 60)
    assert roomy.full and not roomy.warm  # the full retrain itself fits
    features = make_plan(costs(), ["f"], folds, 1000, 10.0, 590)
    assert features.full and not features.warm  # features: the full retrain costs moments


def test_the_full_retrain_is_estimated_with_the_test_prediction_alone():
    """It holds no rows out: of a fold's prediction (held-out + test rows, with TTA) only the test rows' is left."""
    cost = RecipeCost("a", 10, 1000.0, 10.0, 5.0, 12.5, 0.0, full_extra=2.0)
    assert full_seconds(Plan(["a"], {"a": 10}, [0], True), cost) == 10 * 12.5 + 2.0
    assert full_seconds(Plan(["a"], {"a": 10}, [0], True, ["a"]), cost) == 3 * 12.5 + 2.0  # warm: 30% of 10
    assert full_seconds(Plan(["a"], {"a": 10}, [0], True), replace(cost, full_extra=None)) == 10 * 12.5 + 5.0
    assert full_seconds(Plan(["a"], {"a": 10}, [0], False), cost) == 0.0


def test_foldwise_run_follows_a_plan_with_a_warm_full_retrain(tmp_path, monkeypatch, capsys):
    """The loop with a plan that takes the warm rung (forced here: timings cannot be on a test machine): fold 0
    trains, the full retrain starts from its weights, and the submission, the report and plan.json say so."""
    import json

    import pandas as pd

    import foldwise.loop
    from conftest import make_tiny_competition

    real = foldwise.loop.planned

    def warm_plan(comp, recipes, folds, k, time_budget, start):
        plan, costs = real(comp, recipes, folds, k, time_budget, start)
        return replace(plan, warm=[r.name for r in recipes], reasons=["forced by the test"]), costs

    monkeypatch.setattr(foldwise.loop, "planned", warm_plan)
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=10)
    data = tiny_recipe(optim={"epochs": 4}).to_dict()
    data.pop("name")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    argv = ["--root", str(tmp_path), "run", str(comp), "-c", str(tmp_path / "tiny.yaml"), "--folds", "0"]
    assert main([*argv, "--no-dedup"]) == 0
    out, printed = tmp_path / "output" / "tiny", capsys.readouterr().out
    assert "== 4/5 full retrain on all labeled data, from fold 0's weights for tiny (a warm start)" in printed
    assert "full retrain from fold0's weights" in printed  # the submission line names its source
    config = yaml.safe_load((out / "tiny" / "full" / "config.yaml").read_text())
    assert config["init_from"]["run"] == "fold0" and config["epochs"] == 2
    assert json.loads((out / "plan.json").read_text())["warm"] == ["tiny"]
    report = (out / "blend" / "report.md").read_text()
    assert "from fold 0's weights for tiny" in report and "| tiny/full | 2 | 2 |" in report
    assert len(pd.read_csv(out / "submission.csv")) == len(load_competition(comp).test_ids)
