"""The time budget: durations, the plan's degradation ladder, re-planning a slow run, and a whole run that ends in
time with a valid submission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch
import yaml

from conftest import make_tiny_competition, tiny_recipe
from foldwise.budget import RecipeCost, estimate, make_plan, parse_duration
from foldwise.errors import FoldwiseError


def test_durations():
    assert parse_duration("45m") == 2700 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    assert parse_duration("2") == 120  # a plain number is minutes
    with pytest.raises(FoldwiseError, match="write it like 45m"):
        parse_duration("soon")


def costs(epoch_seconds: float = 10.0) -> dict[str, RecipeCost]:
    """Three recipes of 10 epochs; a fold epoch takes `epoch_seconds`, a full-retrain epoch 25% more."""
    return {n: RecipeCost(n, 10, 1000.0, epoch_seconds, 5.0, 1.25 * epoch_seconds, 0.0) for n in ("a", "b", "c")}


@pytest.mark.parametrize(
    "minutes, folds, full, recipes, epochs",
    [
        (60, [0, 1, 2, 3, 4], True, ["a", "b", "c"], 15),  # everything fits, with room for 150% of the epochs
        (35, [0, 1, 2, 3, 4], False, ["a", "b", "c"], 11),  # the fold models' average stands in for the full retrain
        (14.5, [0], True, ["a", "b", "c"], 10),  # fold 0 and the full retrain
        (8, [0], False, ["a", "b", "c"], 12),  # fold 0 alone, with room for 2 more epochs each
        (5, [0], False, ["a", "b", "c"], 5),  # fewer epochs
        (3.5, [0], False, ["a"], 13),  # fewer recipes, the time of the others going to more epochs
    ],
)
def test_the_plan_degrades_in_order(minutes, folds, full, recipes, epochs):
    plan = make_plan(costs(), ["a", "b", "c"], [0, 1, 2, 3, 4], 1000, 10.0, minutes * 60)
    assert (plan.folds, plan.full, plan.recipes, plan.epochs["a"]) == (folds, full, recipes, epochs)
    assert set(plan.epochs.values()) == {epochs}
    assert plan.total <= 0.9 * minutes * 60
    raised = plan.epochs["a"] > 10
    assert raised == any("room to spare" in r for r in plan.reasons)
    if raised:
        assert plan.reasons[-1] == f"room to spare: more epochs ({', '.join(f'{n} 10 -> {epochs}' for n in recipes)})"
    if raised and epochs < 15:  # the next epoch for every recipe would not have fitted
        more = make_plan(costs(), recipes, folds, 1000, 10.0, None)
        more = replace(more, epochs={n: epochs + 1 for n in recipes}, full=full)
        assert estimate(more, costs(), 1000, 10.0).total > 0.9 * minutes * 60


def test_one_fold_without_the_full_retrain_names_the_model_that_predicts():
    plan = make_plan(costs(), ["a"], [0], 1000, 10.0, 3.5 * 60)  # a warm full retrain would need 221 s
    assert (plan.folds, plan.full, plan.epochs) == ([0], False, {"a": 13})
    assert plan.reasons[0] == "the full retrain left out: fold 0's model predicts the test images"


def test_fine_tuned_and_cached_feature_recipes_keep_their_epochs_when_the_budget_has_room():
    kept = {
        **costs(),
        "f": RecipeCost("f", 30, 1000.0, 0.05, 1.0, 0.05, 20.0, grows=False),  # a classifier on cached features
        "t": RecipeCost("t", 4, 1000.0, 10.0, 5.0, 12.5, 0.0, grows=False),  # fine-tuned from pretrained weights
    }
    plan = make_plan(kept, ["a", "f", "t"], [0, 1, 2], 1000, 10.0, 4 * 3600)
    assert plan.epochs == {"a": 15, "f": 30, "t": 4} and plan.full
    assert plan.reasons[-1] == "room to spare: more epochs (a 10 -> 15)"


def test_a_budget_too_small_still_plans_one_run():
    plan = make_plan(costs(), ["a", "b", "c"], [0, 1, 2, 3, 4], 1000, 10.0, 60)
    assert plan.recipes == ["a"] and plan.folds == [0] and not plan.full and plan.epochs["a"] >= 1


def test_no_budget_plans_everything():
    plan = make_plan(costs(), ["a", "b", "c"], [0, 1, 2], 1000, 10.0, None)
    assert plan.full and plan.folds == [0, 1, 2] and plan.total > 0


def test_a_slow_run_is_replanned_and_its_schedule_still_anneals(tiny_comp, monkeypatch, caplog):
    """Epochs made slow (an injected delay): the run re-plans to the epochs that fit its deadline, and the learning
    rate still reaches its end value by the last epoch."""
    from foldwise.cli import main
    from foldwise.data.formats import load_competition
    from foldwise.training.engine import Trainer
    from foldwise.training.runs import plan_run
    from foldwise.training.train import execute
    from foldwise.workspace import Workspace

    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    real = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, *a, **k: (time.sleep(1.0), real(self, *a, **k))[1])
    seen = {}
    real_finish = __import__("foldwise.training.train", fromlist=["finish"]).finish

    def finish(run, history, logits):
        seen["lr"] = run.trainer.optimizer.param_groups[0]["lr"]
        real_finish(run, history, logits)

    monkeypatch.setattr("foldwise.training.train.finish", finish)
    recipe = tiny_recipe(optim={"epochs": 12, "schedule": "linear", "warmup_epochs": 0})
    plan = plan_run(load_competition(tiny_comp), recipe, 0, Workspace(root))
    execute(plan, deadline=time.time() + 8.0)  # room for a slow prepare() and two 1 s epochs on a loaded machine
    history = pd.read_csv(plan.run_dir / "history.csv")
    assert 2 <= len(history) < 12
    assert yaml.safe_load((plan.run_dir / "config.yaml").read_text())["epochs_replanned"] == len(history)
    assert seen["lr"] == pytest.approx(0.0, abs=1e-9)  # annealed to the end of the re-planned schedule
    assert "time budget:" in caplog.text


def test_set_epochs_moves_the_end_of_the_schedule():
    from foldwise.training.engine import Trainer, TrainingSet
    from foldwise.training.inputs import CachedFeatures

    inputs = CachedFeatures(torch.zeros(160, 4), torch.device("cpu"))
    data = TrainingSet(inputs, torch.zeros(160, dtype=torch.long), torch.arange(160), 2, torch.arange(160))
    recipe = tiny_recipe(optim={"epochs": 10, "schedule": "linear", "warmup_epochs": 0})
    trainer = Trainer(torch.nn.Linear(4, 2), recipe, data, 10, False)  # 10 steps per epoch
    trainer.set_epochs(4)
    for step in range(1, 41):
        trainer.scheduler.step_update(num_updates=step)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_a_tiny_budget_ends_in_time_with_a_valid_submission(tmp_path):
    """`foldwise run --time 40s` on a tiny competition: the plan is printed first, the run ends within the budget
    (+5%), and the submission is complete."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=12)
    data = tiny_recipe(optim={"epochs": 40}).to_dict()
    data.pop("name")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "foldwise", "--root", str(tmp_path), "run", str(comp)]
    command += ["-c", str(tmp_path / "tiny.yaml"), "--time", "40s", "--k", "3"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "== plan for a 1 min budget" in result.stdout or "== plan for a 0 min budget" in result.stdout
    assert wall <= 40 * 1.05, f"{wall:.1f} s for a 40 s budget"
    submission = pd.read_csv(tmp_path / "output" / "tiny" / "submission.csv", dtype=str)
    assert len(submission) == 30 and set(submission["label"]) <= {str(c) for c in range(10)}
    plan = json.loads((tmp_path / "output" / "tiny" / "plan.json").read_text())
    assert plan["budget"] == 40 and 0 < plan["elapsed"] <= 40 * 1.05
    report = (tmp_path / "output" / "tiny" / "blend" / "report.md").read_text()
    budget_part = report[report.index("## Time budget") :].split("\n## ")[0]
    assert "Budget 0.7 min" in budget_part and "tiny/fold0" in budget_part


def test_a_rerun_keeps_the_epochs_its_finished_runs_trained_for(tmp_path):
    """A rerun with the same budget plans other epochs once the probes are cached; finished runs keep theirs, also
    those of a recipe at the images' own size (image_size 0), whose runs record the size resolved."""
    from foldwise.budget import Plan
    from foldwise.data.formats import load_competition
    from foldwise.loop import keep_finished_epochs, with_epochs
    from foldwise.training.runs import resolve_recipe
    from foldwise.workspace import Workspace

    comp = load_competition(make_tiny_competition(tmp_path / "input" / "c"))
    recipe, ws = tiny_recipe(data={"image_size": 0}), Workspace(tmp_path)
    recorded = resolve_recipe(recipe, comp)  # what a run records
    assert (recipe.data.image_size, recorded.data.image_size) == (0, 16)  # 8 px digits, at least 16
    plan = Plan([recipe.name], {recipe.name: recipe.optim.epochs + 3}, [0], False)
    run = ws.comp_dir("c") / recipe.name / "fold0"
    run.mkdir(parents=True)
    other = replace(recorded, optim=replace(recorded.optim, lr=recorded.optim.lr * 2))
    (run / "config.yaml").write_text(yaml.safe_dump({"recipe": with_epochs(other, recipe.optim.epochs + 2).to_dict()}))
    assert keep_finished_epochs(plan, ws, comp, [recipe]).epochs == plan.epochs  # another recipe's run: no say
    (run / "config.yaml").write_text(
        yaml.safe_dump({"recipe": with_epochs(recorded, recipe.optim.epochs + 2).to_dict()})
    )
    kept = keep_finished_epochs(plan, ws, comp, [recipe])
    assert kept.epochs == {recipe.name: recipe.optim.epochs + 2} and "keeps its" in kept.reasons[-1]
