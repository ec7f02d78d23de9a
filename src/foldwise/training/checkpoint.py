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
from foldwise.training.engine import Trainer
from foldwise.training.runs import RUN_IDENTITY, TRAIN_PIXELS, same

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, numpy (timm's Mixup) and python (timm's RandomErasing); return the batch-order generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def rng_state(generator: torch.Generator) -> dict:
    """Every random stream a run draws from, for an exact resume."""
    state = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Restore `rng_state()`."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, meta: dict, trainer: Trainer, generator: torch.Generator, history: list[dict]) -> None:
    """Write last.pt: the Trainer's state, every RNG stream, the history so far, and what run it belongs to."""
    state = {"meta": meta, "trainer": trainer.state_dict(), "rng": rng_state(generator), "epoch": len(history)}
    state["history"] = history
    write_atomic(run_dir / CHECKPOINT, lambda p: torch.save(state, p))


def resume(run_dir: Path, meta: dict, trainer: Trainer, generator: torch.Generator) -> list[dict]:
    """The history of the finished epochs from run_dir/last.pt when it belongs to this exact run (the Trainer and
    RNG streams restored); [] when there is none."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return []
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["meta"].get(TRAIN_PIXELS) != meta.get(TRAIN_PIXELS):
        log.warning("%s: the training images changed since it was written; starting the run over", path)
        path.unlink()
        return []
    for key in (*RUN_IDENTITY, "seed"):
        if not same(key, state["meta"].get(key), meta.get(key)):
            raise FoldwiseError(f"{path}: an unfinished run with a different {key}; pass --force to start over.")
    trainer.load_state_dict(state["trainer"])
    set_rng_state(state["rng"], generator)
    log.info("%s: resuming after epoch %d (step %d)", run_dir, state["epoch"], trainer.step)
    return state["history"]
