"""A run killed with SIGKILL mid-epoch resumes from its checkpoint and ends exactly where an uninterrupted run does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from conftest import make_tiny_competition, tiny_recipe
from foldwise.cli import main

# Every random stream is in play: batch order and crop/flip (torch generator), mixup (numpy), random erasing
# (python random + torch global), EMA and the LR schedule (state dicts).
RECIPE = tiny_recipe(
    data={"batch_size": 16, "hflip": True, "mixup": 0.4, "random_erasing": 0.25},
    optim={"epochs": 4, "ema_decay": 0.9, "clip_grad": 1.0},
)
STEPS_PER_EPOCH = 80 // 16  # fold 0 of 100 images holds out 20

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import foldwise.training.engine as engine

    real, seen = engine.progress, [0]

    def progress(iterable=None, **kwargs):  # SIGKILL ourselves in the middle of epoch 3's batches
        for item in real(iterable, **kwargs):
            if kwargs.get("desc", "").startswith("tiny fold 0 epoch"):
                seen[0] += 1
                if seen[0] == int(os.environ["KILL_AT_STEP"]):
                    os.kill(os.getpid(), signal.SIGKILL)
            yield item

    engine.progress = progress
    from foldwise.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def prepare(root: Path) -> list[str]:
    """A competition with folds and the recipe file under `root`; returns the train command's arguments."""
    comp = make_tiny_competition(root / "input" / "tiny")
    assert main(["--root", str(root), "folds", str(comp)]) == 0
    data = RECIPE.to_dict()
    data.pop("name")
    (root / "tiny.yaml").write_text(yaml.safe_dump(data))
    return ["--root", str(root), "train", str(comp), "-c", str(root / "tiny.yaml"), "--fold", "0"]


def run(args: list[str], kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, KILL_AT_STEP=str(kill_at or 10**9))
    return subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, env=env)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    """Optimizer, scheduler, EMA, RNG streams and epoch are restored: same history metrics and bitwise-same logits.

    Exact equality holds because the CPU kernels are deterministic for a fixed thread count and every random
    stream is restored; both runs use the same process setup.
    """
    straight_args = prepare(tmp_path / "straight")
    assert run(straight_args).returncode == 0

    args = prepare(tmp_path / "killed")
    killed = run(args, kill_at=2 * STEPS_PER_EPOCH + 3)
    assert killed.returncode == -9, killed.stderr[-2000:]
    fold_dir = tmp_path / "killed" / "output" / "tiny" / "tiny" / "fold0"
    assert not (fold_dir / "model.pt").exists()
    assert torch.load(fold_dir / "last.pt", weights_only=False)["epoch"] == 2

    resumed = run(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 2 (step 10)" in resumed.stderr
    assert not (fold_dir / "last.pt").exists()

    straight_dir = tmp_path / "straight" / "output" / "tiny" / "tiny" / "fold0"
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(np.load(fold_dir / name)["logits"], np.load(straight_dir / name)["logits"])
    columns = ["epoch", "lr", "train_loss", "valid_loss", "valid_acc"]
    pd.testing.assert_frame_equal(pd.read_csv(fold_dir / "history.csv")[columns],
                                  pd.read_csv(straight_dir / "history.csv")[columns])  # fmt: skip


def test_unfinished_run_of_another_recipe_is_not_resumed(tmp_path, capsys):
    """A checkpoint left by a different recipe is an error (with --force to start over), never silently mixed in."""
    args = prepare(tmp_path)
    assert run(args, kill_at=STEPS_PER_EPOCH + 2).returncode == -9
    assert main(args + ["--set", "optim.lr=0.01"]) == 2
    assert "unfinished run with a different recipe; pass --force" in capsys.readouterr().err
    assert main(args + ["--set", "optim.lr=0.01", "--force"]) == 0
