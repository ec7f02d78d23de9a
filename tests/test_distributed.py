"""torchrun: one fold trained by 2 CPU processes (gloo backend) under DistributedDataParallel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import torch
import yaml

from conftest import make_tiny_competition, tiny_recipe
from foldwise.cli import main
from foldwise.training.distributed import Dist, gather_sharded, shard


def test_shard_and_gather_are_inverse_single_process():
    """Without torchrun, sharding is the identity and gathering returns the rows unchanged."""
    rows = torch.arange(7)
    assert torch.equal(shard(rows, Dist()), rows)
    assert torch.equal(gather_sharded(rows[:, None].float(), 7, Dist()), rows[:, None].float())


def test_torchrun_two_cpu_processes_cover_each_oof_id_once(tmp_path):
    """Every held-out id gets exactly one row of logits, and the logged accuracy is that of the gathered logits."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=9)
    assert main(["--root", str(tmp_path), "folds", str(comp), "--k", "3"]) == 0
    data = tiny_recipe(data={"batch_size": 16}).to_dict()
    data.pop("name")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "foldwise", "--root", str(tmp_path), "train", str(comp), "-c", str(tmp_path / "r.yaml"),
           "--fold", "1"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 ranks (DDP)" in result.stderr

    run_dir = tmp_path / "output" / "tiny" / "r" / "fold1"
    folds = pd.read_csv(tmp_path / "folds" / "tiny.csv", dtype={"id": str})
    oof = np.load(run_dir / "oof.npz")
    assert sorted(oof["ids"].tolist()) == sorted(folds.loc[folds["fold"] == 1, "id"])
    assert len(set(oof["ids"].tolist())) == len(oof["ids"])
    history = pd.read_csv(run_dir / "history.csv")
    accuracy = float((oof["logits"].argmax(1) == oof["labels"]).mean())
    assert abs(history["valid_acc"].iloc[-1] - accuracy) < 1e-6
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["world_size"] == 2
    assert np.load(run_dir / "test.npz")["logits"].shape == (30, 10)
