"""Optional experiment trackers, through their own libraries when installed; never required.

    run.tracker: tensorboard   # in a recipe, or --set run.tracker=tensorboard, or FOLDWISE_TRACKER=tensorboard
    run.tracker: wandb         # Weights & Biases; WANDB_MODE=offline is respected (wandb reads it itself)

Each run logs its per-epoch row (losses, accuracy, lr, img/s) under its own name; the blend logs its candidate
table. TensorBoard writes into the run folder (`tensorboard/`), W&B where wandb puts its runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from foldwise.errors import FoldwiseError

TRACKERS = ("none", "tensorboard", "wandb")


def chosen(setting: str) -> str:
    """The tracker to use: the recipe's run.tracker, unless FOLDWISE_TRACKER names one."""
    name = os.environ.get("FOLDWISE_TRACKER") or setting or "none"
    if name not in TRACKERS:
        raise FoldwiseError(f"tracker {name!r}: choose one of {', '.join(TRACKERS)} (run.tracker or FOLDWISE_TRACKER).")
    return name


class Tracker:
    """Logs rows of numbers and tables to TensorBoard or W&B; a no-op for 'none'."""

    def __init__(self, name: str, run_name: str, folder: Path, config: dict | None = None):
        self.name, self.writer, self.run = chosen(name), None, None
        if self.name == "tensorboard":
            self.writer = tensorboard_writer(folder / "tensorboard")
        elif self.name == "wandb":
            wandb = library("wandb", "pip install wandb")
            self.run = wandb.init(name=run_name, dir=str(folder), config=config or {}, reinit=True)

    def log(self, row: dict, step: int) -> None:
        """One row of numbers (an epoch's), at `step`."""
        numbers = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"}
        if self.writer is not None:
            for key, value in numbers.items():
                self.writer.add_scalar(key, value, step)
        if self.run is not None:
            self.run.log(numbers, step=step)

    def table(self, key: str, header: list[str], rows: list[list]) -> None:
        """A table (the blend's candidates)."""
        if self.writer is not None:
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            self.writer.add_text(key, "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]))
        if self.run is not None:
            wandb = library("wandb", "pip install wandb")
            self.run.log({key: wandb.Table(columns=header, data=[[str(c) for c in r] for r in rows])})

    def close(self) -> None:
        """Flush and finish."""
        if self.writer is not None:
            self.writer.close()
        if self.run is not None:
            self.run.finish()


def library(module: str, install: str):
    """Import a tracker's library, or say how to install it."""
    try:
        return __import__(module)
    except ImportError as e:
        raise FoldwiseError(f"run.tracker needs {module}, which is not installed: `{install}`.") from e


def tensorboard_writer(folder: Path):
    """TensorBoard's SummaryWriter (torch's front end for the tensorboard package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise FoldwiseError("run.tracker tensorboard needs the tensorboard package: `pip install tensorboard`.") from e
    return SummaryWriter(log_dir=str(folder))
