"""last.pt: written after every epoch, so a killed run (even by SIGKILL) resumes where it stopped and ends where an
uninterrupted run would; removed once model.pt is written."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic
from foldwise.training.distributed import Dist
from foldwise.training.engine import Trainer
from foldwise.training.inputs import RANK_STRIDE
from foldwise.training.runs import INIT_FROM, RUN_IDENTITY, TRAIN_PIXELS, same

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"


def seed_everything(seed: int, rank: int = 0) -> torch.Generator:
    """Seed torch (model init: the same on every rank), numpy (timm's Mixup) and python (timm's RandomErasing) -
    those two offset by the rank, so DDP ranks draw different mixing - and return the batch-order generator (the
    same on every rank: each takes its share of one permutation)."""
    torch.manual_seed(seed)
    np.random.seed((seed + RANK_STRIDE * rank) % 2**32)
    random.seed(seed + RANK_STRIDE * rank)
    return torch.Generator().manual_seed(seed)


def rng_state(generator: torch.Generator, device: torch.device) -> dict:
    """Every random stream this process draws from: the CPU ones, and the run's own GPU's (one device's state, so
    a resume in a process that sees fewer GPUs restores it, not a list indexed by device number)."""
    state = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    """Restore `rng_state()`."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def on_cpu(value):
    """A (nested) state with every tensor moved to the CPU: checkpoints load where there is no GPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


def save(run_dir: Path, meta: dict, trainer: Trainer, generator: torch.Generator, history: list[dict]) -> None:
    """Every rank calls this: the RNG streams of all ranks are gathered (each rank resumes its own), and rank 0
    writes last.pt with the Trainer's state (on the CPU), the history so far and what run it belongs to."""
    ranks = all_ranks(rng_state(generator, trainer.device), trainer.dist)
    if not trainer.dist.is_main:
        return
    state = {"meta": meta, "trainer": on_cpu(trainer.state_dict()), "rng": ranks, "epoch": len(history)}
    state["history"] = history
    write_atomic(run_dir / CHECKPOINT, lambda p: torch.save(state, p))


def all_ranks(state: dict, dist_info: Dist) -> list[dict]:
    """Each rank's RNG state, in rank order (under torchrun gathered from every process)."""
    if not dist_info.enabled:
        return [state]
    gathered: list = [None] * dist_info.world
    torch.distributed.all_gather_object(gathered, on_cpu(state))
    return gathered


def resume(run_dir: Path, meta: dict, trainer: Trainer, generator: torch.Generator) -> list[dict]:
    """The history of the finished epochs from run_dir/last.pt when it belongs to this exact run (the Trainer and
    RNG streams restored); [] when there is none."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return []
    state = torch.load(path, map_location="cpu", weights_only=False)
    for key, what in ((TRAIN_PIXELS, "the training images"), (INIT_FROM, "the fold model it started from")):
        if state["meta"].get(key) != meta.get(key):
            log.warning("%s: %s changed since it was written; starting the run over", path, what)
            path.unlink(missing_ok=True)  # every rank checks; the first one removes it
            return []
    for key in (*RUN_IDENTITY, "seed"):
        if not same(key, state["meta"].get(key), meta.get(key)):
            raise FoldwiseError(f"{path}: an unfinished run with a different {key}; pass --force to start over.")
    ranks = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
    if len(ranks) != trainer.dist.world:
        raise FoldwiseError(
            f"{path}: written by a run of {len(ranks)} process(es), resumed with {trainer.dist.world}; "
            "resume with the same number of processes, or pass --force to start over."
        )
    trainer.load_state_dict(state["trainer"])
    set_rng_state(ranks[trainer.dist.rank], generator, trainer.device)
    log.info("%s: resuming after epoch %d (step %d)", run_dir, state["epoch"], trainer.step)
    return state["history"]
