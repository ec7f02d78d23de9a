"""Experiment trackers through their own libraries, mocked at their import boundary (neither is a dependency):
each run's per-epoch rows reach them, and a missing library is one clear error."""

from __future__ import annotations

import sys
import types

import pytest

from conftest import tiny_recipe
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError
from foldwise.tracking import Tracker
from foldwise.workspace import Workspace


class FakeWandb(types.ModuleType):
    """What foldwise calls of wandb: init -> run.log / run.finish, and Table."""

    def __init__(self):
        super().__init__("wandb")
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        return self

    def log(self, data, step=None):
        self.calls.append(("log", data, step))

    def finish(self):
        self.calls.append(("finish",))

    def Table(self, columns, data):  # noqa: N802 (wandb's name)
        return ("table", columns, data)


class FakeWriter:
    """torch.utils.tensorboard.SummaryWriter's add_scalar / add_text / close."""

    made = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.texts, self.closed = log_dir, [], [], False
        FakeWriter.made.append(self)

    def add_scalar(self, key, value, step):
        self.scalars.append((key, value, step))

    def add_text(self, key, text):
        self.texts.append((key, text))

    def close(self):
        self.closed = True


@pytest.fixture
def ready(tiny_comp):
    from foldwise.cli import main

    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    return load_competition(tiny_comp), Workspace(root)


def test_wandb_gets_every_epoch_of_a_run(ready, monkeypatch):
    from foldwise.training.train import train_run

    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    comp, ws = ready
    train_run(comp, tiny_recipe(run={"tracker": "wandb"}), 0, ws)
    init = [c for c in fake.calls if c[0] == "init"]
    logged = [c for c in fake.calls if c[0] == "log"]
    assert init[0][1]["name"] == "tiny fold 0" and init[0][1]["config"]["optim"]["epochs"] == 2
    assert [step for _, _, step in logged] == [1, 2]
    assert {"train_loss", "valid_loss", "valid_acc", "lr", "img_per_s"} <= set(logged[0][1])
    assert fake.calls[-1] == ("finish",)


def test_tensorboard_gets_scalars_and_the_blend_table(tmp_path, monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    monkeypatch.setenv("FOLDWISE_TRACKER", "tensorboard")
    tracker = Tracker("none", "tiny fold 0", tmp_path)
    tracker.log({"epoch": 1, "train_loss": 0.5, "valid_acc": 0.9, "note": "x"}, step=1)
    tracker.table("blend", ["candidate", "accuracy"], [["mean_logits", "0.99"]])
    tracker.close()
    writer = FakeWriter.made[-1]
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.closed
    assert sorted(writer.scalars) == [("train_loss", 0.5, 1), ("valid_acc", 0.9, 1)]
    assert "| mean_logits | 0.99 |" in writer.texts[0][1]


def test_a_tracker_that_is_not_installed_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(FoldwiseError, match="pip install wandb"):
        Tracker("wandb", "x", tmp_path)
    with pytest.raises(FoldwiseError, match="tracker 'mlflow': choose one of none, tensorboard, wandb"):
        Tracker("mlflow", "x", tmp_path)
