"""The CUDA path's fixes, exercised where a CPU can: what only a GPU can answer is bench/gpu_proof.py's job.

Each test names the finding it guards (issue "The GPU path, proven", file:line as of c96b2e5).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_recipe
from foldwise.errors import FoldwiseError
from foldwise.training import checkpoint, device, stream
from foldwise.training.distributed import Dist, mean_across
from foldwise.training.inputs import device_generator

REPO = Path(__file__).resolve().parents[1]


def test_loss_mean_is_reduced_on_the_tensors_own_device():
    """1. mean_across all-reduces the tensor it is given (a CUDA tensor under nccl), not a new CPU tensor."""
    import torch.distributed as dist

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:

        class OneRank(Dist):
            @property
            def enabled(self) -> bool:
                return True

        seen = []
        real = dist.all_reduce
        dist.all_reduce = lambda t, *a, **k: seen.append(t.device) or real(t, *a, **k)
        try:
            assert mean_across(torch.tensor(2.5, dtype=torch.float64), OneRank()) == 2.5
        finally:
            dist.all_reduce = real
        assert seen == [torch.device("cpu")]
    finally:
        dist.destroy_process_group()


def test_rng_state_holds_the_runs_own_gpu_only(monkeypatch):
    """2. One CUDA state, the run's device's, restored to that device: not get_rng_state_all() restored by index
    (an IndexError in a child that sees one GPU)."""
    calls = []
    monkeypatch.setattr(
        torch.cuda, "get_rng_state", lambda d: calls.append(("get", d)) or torch.zeros(8, dtype=torch.uint8)
    )
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: calls.append(("set", d)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state"))
    generator, gpu = torch.Generator().manual_seed(0), torch.device("cuda", 3)
    state = checkpoint.rng_state(generator, gpu)
    checkpoint.set_rng_state(state, generator, gpu)
    assert calls == [("get", gpu), ("set", gpu)] and state["cuda"].dtype == torch.uint8


def test_a_checkpoint_of_another_world_size_is_refused(tiny_comp, tmp_path):
    """2. Each rank resumes its own RNG streams: last.pt from a 2-process run cannot resume in 1 process."""
    from foldwise.cli import main
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import plan_run
    from foldwise.training.train import prepare
    from foldwise.workspace import Workspace

    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    plan = plan_run(load_competition(tiny_comp), tiny_recipe(), 0, Workspace(root))
    run = prepare(plan)
    state = checkpoint.rng_state(run.generator, run.device)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"meta": plan.meta, "trainer": run.trainer.state_dict(), "rng": [state, state], "epoch": 1, "history": [{}]},
        plan.run_dir / checkpoint.CHECKPOINT,
    )
    with pytest.raises(FoldwiseError, match="written by a run of 2 process"):
        checkpoint.resume(plan.run_dir, plan.meta, run.trainer, run.generator)


def test_checkpoints_hold_cpu_tensors(tiny_comp):
    """7. model.pt and last.pt load without map_location on a machine without a GPU (on_cpu before saving)."""
    from foldwise.cli import main

    nested = {"a": torch.ones(2), "b": [torch.zeros(1), {"c": torch.arange(3)}], "d": 5}
    moved = checkpoint.on_cpu(nested)
    assert moved["d"] == 5 and all(t.device.type == "cpu" for t in (moved["a"], moved["b"][0], moved["b"][1]["c"]))
    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    from foldwise.data.formats import load_competition
    from foldwise.training.train import train_run
    from foldwise.workspace import Workspace

    run_dir = train_run(load_competition(tiny_comp), tiny_recipe(), 0, Workspace(root))
    saved = torch.load(run_dir / "model.pt", weights_only=False)
    assert all(t.device.type == "cpu" for t in saved["state_dict"].values())


def test_bf16_auto_needs_a_native_bf16_gpu(monkeypatch):
    """4. A T4 (7.5) or V100 (7.0) only emulates bf16: auto is off there, on from Ampere (8.0); the run's device
    is asked, not the current one."""
    asked = []
    capability = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: asked.append(d) or capability[d.index])
    assert device.resolve_bf16("auto", torch.device("cuda", 0)) is False
    assert device.resolve_bf16("auto", torch.device("cuda", 1)) is True
    assert [d.index for d in asked] == [0, 1]


def test_auto_pipeline_uses_total_gpu_memory(monkeypatch):
    """5. `auto` decides from the GPU's total memory, so memory the caching allocator still holds from an earlier
    fold cannot flip a later fold (or another rank) to the other path."""

    class Properties:
        total_memory = 10 * 2**30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: Properties())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: pytest.fail("free memory varies between folds"))
    gpu = torch.device("cuda", 0)
    assert stream.choose_pipeline("auto", 100_000, 64, gpu) == "tensor"  # 1.2 GB of 10 GB
    assert stream.choose_pipeline("auto", 1_000_000, 64, gpu) == "stream"  # 12 GB


def test_ranks_draw_different_augmentations_from_one_batch_order():
    """7. Under DDP each rank gets its own augmentation stream, and the shared batch-order generator advances the
    same on every rank (a rank that drew more would shard another permutation)."""
    shared = [torch.Generator().manual_seed(5) for _ in range(2)]
    streams = [device_generator(g, torch.device("cpu"), rank, world=2) for rank, g in enumerate(shared)]
    assert not torch.equal(torch.rand(4, generator=streams[0]), torch.rand(4, generator=streams[1]))
    assert torch.equal(shared[0].get_state(), shared[1].get_state())
    one = torch.Generator().manual_seed(5)
    assert device_generator(one, torch.device("cpu")) is one  # a one-process CPU run is as before
    checkpoint.seed_everything(9, rank=0)
    first = np.random.rand(), torch.rand(1)
    checkpoint.seed_everything(9, rank=1)
    second = np.random.rand(), torch.rand(1)
    assert first[0] != second[0] and torch.equal(first[1], second[1])  # mixing differs, model init does not


def test_global_batch_must_split_over_the_ranks():
    """7. A global batch that does not divide by the number of processes is an error, not a silently smaller one."""
    from foldwise.training.engine import Trainer, TrainingSet
    from foldwise.training.inputs import CachedFeatures

    inputs = CachedFeatures(torch.zeros(10, 4), torch.device("cpu"))
    data = TrainingSet(inputs, torch.zeros(10, dtype=torch.long), torch.arange(10), 2, torch.arange(10))
    with pytest.raises(FoldwiseError, match="data.batch_size 16 does not split over 3 ranks"):
        Trainer(torch.nn.Linear(4, 2), tiny_recipe(), data, 1, False, Dist(rank=0, world=3))


def test_deterministic_mode_switches_torch(monkeypatch):
    """2. run.deterministic turns on torch's deterministic algorithms (warning, not failing, where none exists)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        device.set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        device.set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_gpu_list_honours_the_schedulers_choice(monkeypatch):
    """6. The GPUs are CUDA_VISIBLE_DEVICES's when set (ids or UUIDs), never a physical count that overrides it;
    a per-GPU child that sees no GPU fails instead of training on the CPU."""
    from foldwise.gpus import REQUIRE_CUDA, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-5f3c,")
    assert visible_gpus() == ["2", "GPU-5f3c"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv(REQUIRE_CUDA, "1")
    with pytest.raises(FoldwiseError, match="started on a GPU .* but torch sees none"):
        device.resolve_device("auto")


def test_gpu_proof_dry_run_runs_its_checks_on_the_cpu(tmp_path):
    """bench/gpu_proof.py --dry-run: each check's CPU code path runs and gets an ok row. Checks 3 (SIGKILL and
    resume, three processes) and 9 (foldwise run) are left to `python bench/gpu_proof.py --dry-run` by hand (1.7 min
    here): test_resume.py and test_e2e.py run the same code paths in every suite."""
    command = [sys.executable, str(REPO / "bench" / "gpu_proof.py"), "--dry-run", "--out", str(tmp_path)]
    command += ["--only", "1,2,4,5,6,7,8,10,11"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    table = (tmp_path / "gpu_proof.md").read_text() if (tmp_path / "gpu_proof.md").exists() else result.stdout
    assert result.returncode == 0, table + result.stderr[-3000:]
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 9 and all(" ok " in r for r in rows), table
