"""The epoch loop of one run: train, score the held-out rows, log, checkpoint, stop early or at the time budget's
deadline (re-planning the remaining epochs so the schedule still anneals). train.py prepares the Run and writes what
the loop leaves."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic
from foldwise.metrics import Metric, metric
from foldwise.tracking import Tracker
from foldwise.training import checkpoint
from foldwise.training.distributed import Dist
from foldwise.training.engine import Trainer
from foldwise.training.inputs import Inputs
from foldwise.training.runs import RunPlan

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A run ready to train: its plan, where it computes, the whole model and the Trainer, and the images."""

    plan: RunPlan
    device: torch.device
    dist: Dist
    generator: torch.Generator  # the batch-order stream (seeded with the run's seed)
    model: torch.nn.Module  # the whole network, as model.pt stores it
    trainer: Trainer  # trains the model, or only its classifier on cached features
    test: Inputs
    valid_rows: torch.Tensor  # the fold's held-out rows (empty for the full retrain)
    epochs: int  # planned; re-planned against `deadline` after each epoch
    normalization: tuple[list[float], list[float]]  # mean, std the model's input was normalized with
    deadline: float | None = None  # time.time() by which the run must have finished (a time budget)


def should_stop(history: list[dict], patience: int, scored: Metric | None = None) -> bool:
    """Early stopping: the last `patience` epochs brought no score better than the best one before them, scored by
    the competition's metric (valid loss when none is given)."""
    if patience <= 0 or len(history) <= patience:
        return False
    scored = scored or metric("log_loss")
    column = history_column(scored)
    keys = [scored.sort_key(h[column]) for h in history]  # lower is better
    return min(keys[-patience:]) >= min(keys[:-patience])


def history_column(scored: Metric) -> str:
    """The history.csv column that holds a metric's per-epoch score."""
    return {"log_loss": "valid_loss", "accuracy": "valid_acc"}.get(scored.name, f"valid_{scored.name}")


def fit(run: Run) -> tuple[list[dict], np.ndarray | None]:
    """Train the remaining epochs (resuming from last.pt), scoring the held-out rows after each; (history, the
    last epoch's plain held-out logits, or None when no epoch ran)."""
    plan, trainer = run.plan, run.trainer
    history = checkpoint.resume(plan.run_dir, plan.meta, trainer, run.generator)
    ranks = f" x {run.dist.world} ranks (DDP)" if run.dist.enabled else ""
    log.info(
        "%s: %d train / %d valid images, %s%s, %s path, bf16 %s, seed %d",
        plan.name,
        len(trainer.data.rows),
        len(run.valid_rows),
        run.device,
        ranks,
        plan.meta["pipeline"],
        trainer.bf16,
        plan.meta["seed"],
    )
    tracker = (
        Tracker(plan.recipe.run.tracker, plan.name, plan.run_dir, plan.recipe.to_dict()) if run.dist.is_main else None
    )
    epoch_logits = None
    epoch = len(history)
    while epoch < run.epochs:
        epoch += 1
        if plan.fold is not None and should_stop(history, plan.recipe.optim.patience, metric(plan.comp.metric)):
            break
        row, epoch_logits = run_epoch(run, epoch)
        history.append(row)
        if tracker is not None:
            quick = row["seconds"] < 1 and epoch < run.epochs  # a classifier on cached features: 30 epochs at once
            log.log(logging.DEBUG if quick else logging.INFO, "%s", epoch_line(plan.name, history, run.epochs))
            tracker.log(row, epoch)
            write_atomic(plan.run_dir / "history.csv", lambda p: pd.DataFrame(history).to_csv(p, index=False))
        checkpoint.save(plan.run_dir, plan.meta, trainer, run.generator, history)  # every rank: RNG streams
        if run.deadline is not None:
            replan(run, history)
    if tracker is not None:
        tracker.close()
    return history, epoch_logits


def replan(run: Run, history: list[dict]) -> None:
    """Fit the remaining epochs to the time left before the run's deadline (mean of the last epochs' seconds, one
    epoch's worth kept for the final predictions); the schedule is stretched or shrunk to end annealed then."""
    per_epoch = float(np.mean([h["seconds"] for h in history[-3:]]))
    left = run.deadline - time.time() - per_epoch  # the OOF and test predictions at the end
    epochs = max(len(history), min(run.plan.recipe.optim.epochs, len(history) + int(left // per_epoch)))
    if run.dist.enabled:  # every rank trains the same number of epochs: rank 0's clock decides
        shared = [epochs]
        torch.distributed.broadcast_object_list(shared, src=0)
        epochs = shared[0]
    if epochs != run.epochs:
        log.warning(
            "%s: time budget: %d epochs instead of %d (an epoch takes %.0f s, %.0f s left)",
            run.plan.name,
            epochs,
            run.epochs,
            per_epoch,
            max(left + per_epoch, 0),
        )
        run.epochs = epochs
        run.plan.meta["epochs_replanned"] = epochs
        run.trainer.set_epochs(epochs)


def run_epoch(run: Run, epoch: int) -> tuple[dict, np.ndarray | None]:
    """Train one epoch, then score the held-out rows on plain images (the OOF logits get the recipe's TTA later);
    the history row and those logits."""
    trainer, start = run.trainer, time.perf_counter()
    row = {"epoch": epoch, "lr": trainer.optimizer.param_groups[0]["lr"]}
    row["train_loss"] = trainer.train_epoch(run.generator, desc=f"{run.plan.name} epoch {epoch}/{run.epochs}")
    trained = time.perf_counter() - start
    logits = None
    if len(run.valid_rows):
        logits = trainer.predict(trainer.data.inputs, run.valid_rows, desc="valid", tta=False)
        row.update(score_logits(logits, valid_labels(run), metric(run.plan.comp.metric)))
    row["img_per_s"] = round(len(trainer.data.rows) / max(trained, 1e-9), 1)  # training images per second
    row["seconds"] = round(time.perf_counter() - start, 2)  # training and scoring
    return row, logits


def epoch_line(name: str, history: list[dict], epochs: int) -> str:
    """'speed fold 0 epoch 3/16: train_loss 0.51, valid_loss 0.41, valid_acc 0.912, lr 0.081, 912 img/s,
    48 s/epoch, ETA 18:42 (10.4 min left)': one readable log line per finished epoch."""
    row = history[-1]
    scores = ", ".join(f"{k} {row[k]:.4g}" for k in ("train_loss", "valid_loss", "valid_acc", "lr") if k in row)
    per_epoch = float(np.mean([h["seconds"] for h in history[-3:]]))
    left = per_epoch * (epochs - row["epoch"])
    eta = time.strftime("%H:%M", time.localtime(time.time() + left))
    return (
        f"{name} epoch {row['epoch']}/{epochs}: {scores}, {row['img_per_s']:.0f} img/s, {per_epoch:.0f} s/epoch, "
        f"ETA {eta} ({left / 60:.1f} min left)"
    )


def valid_labels(run: Run) -> np.ndarray:
    """Labels of the held-out rows."""
    return run.trainer.data.labels[run.valid_rows].numpy()


def score_logits(logits: np.ndarray, labels: np.ndarray, scored: Metric | None = None) -> dict:
    """Validation loss and accuracy of logits against integer labels, and the competition's metric beside them."""
    t = torch.from_numpy(logits)
    y = torch.from_numpy(labels)
    scores = {
        "valid_loss": float(torch.nn.functional.cross_entropy(t, y)),
        "valid_acc": float((t.argmax(1) == y).float().mean()),
    }
    if scored is not None and scored.name not in ("accuracy", "log_loss"):
        try:
            scores[history_column(scored)] = scored(torch.softmax(t.double(), 1).numpy(), labels)
        except FoldwiseError:  # e.g. ROC-AUC of rows of one class: no score this epoch
            scores[history_column(scored)] = float("nan")
    return scores
