"""Train one fold (or the full retrain) and write its artifacts: history.csv, config.yaml, oof.npz, test.npz, model.pt.

foldwise train input/digits -c configs/cpu-cnn.yaml --fold all
foldwise train input/digits -c configs/cpu-cnn.yaml --full
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from foldwise.cache import cached_images
from foldwise.competition import Competition
from foldwise.config import Recipe
from foldwise.engine import Batcher, predict_logits, resolve_bf16, train_one_epoch
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic, write_text_atomic
from foldwise.folds import read_folds
from foldwise.models import create_model, normalization
from foldwise.optim import create_optimizer_and_scheduler
from foldwise.runs import run_meta, skip_finished
from foldwise.workspace import Workspace

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FoldwiseError(f"run.device={name!r} but no CUDA GPU is visible; use run.device=auto or cpu.")
    return torch.device(name)


def train_run(comp: Competition, recipe: Recipe, fold: int | None, ws: Workspace, force: bool = False) -> Path:
    """Train one fold (fold=None: all labeled data) and write its artifacts; skip when already finished."""
    folds = read_folds(ws.folds_csv(comp.name), comp)
    run_dir = ws.run_dir(comp.name, recipe.name, fold)
    meta = run_meta(comp, recipe, fold, ws)
    if not force and skip_finished(run_dir, fold, meta):
        return run_dir

    row_of = {id_: i for i, id_ in enumerate(comp.train_ids)}
    fold_of = dict(zip(folds["id"], folds["fold"]))
    valid_rows = [row_of[i] for i in comp.train_ids if fold is not None and fold_of[i] == fold]
    train_rows = [row_of[i] for i in comp.train_ids if fold is None or fold_of[i] != fold]
    if fold is not None and not valid_rows:
        raise FoldwiseError(f"{ws.folds_csv(comp.name)}: fold {fold} has no images; choose an existing fold.")
    size = recipe.data.image_size
    train_array = cached_images(comp.train_images, size, ws.cache_dir(comp.name), "train")
    test_array = cached_images(comp.test_images, size, ws.cache_dir(comp.name), "test")

    device = resolve_device(recipe.run.device)
    if recipe.run.threads and device.type == "cpu":
        torch.set_num_threads(recipe.run.threads)
    bf16 = resolve_bf16(recipe.run.bf16, device)
    torch.manual_seed(meta["seed"])
    generator = torch.Generator().manual_seed(meta["seed"])
    model = create_model(recipe.model, len(comp.classes)).to(device)
    if recipe.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in normalization(model))
    batcher = Batcher(torch.from_numpy(np.array(train_array)).to(device), mean, std, device,
                      recipe.run.channels_last)  # fmt: skip
    labels = torch.tensor(comp.train_labels, dtype=torch.long)
    rows, valid = torch.tensor(train_rows), torch.tensor(valid_rows, dtype=torch.long)
    steps_per_epoch = max(1, len(rows) // recipe.data.batch_size)
    optimizer, scheduler = create_optimizer_and_scheduler(model, recipe.optim, steps_per_epoch)

    name = f"{recipe.name} {'full' if fold is None else f'fold {fold}'}"
    log.info(
        "%s: %d train / %d valid images, %s, bf16 %s, seed %d", name, len(rows), len(valid), device, bf16, meta["seed"]
    )
    history, step = [], 0
    for epoch in range(1, recipe.optim.epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, step = train_one_epoch(
            model, batcher, labels, rows, optimizer, scheduler, batch_size=recipe.data.batch_size,
            padding=recipe.data.crop_padding, hflip=recipe.data.hflip, label_smoothing=recipe.optim.label_smoothing,
            bf16=bf16, generator=generator, step=step, desc=f"{name} epoch {epoch}/{recipe.optim.epochs}",
        )  # fmt: skip
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
        if len(valid):
            oof_logits = predict_logits(model, batcher, valid, batch_size=recipe.data.eval_batch_size,
                                        bf16=bf16, desc="valid")  # fmt: skip
            row.update(score_logits(oof_logits, labels[valid].numpy()))
        row["seconds"] = round(time.perf_counter() - start, 2)
        history.append(row)
        log.info("%s epoch %d: %s", name, epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        write_atomic(run_dir / "history.csv", lambda p: pd.DataFrame(history).to_csv(p, index=False))

    batcher.images = torch.from_numpy(np.array(test_array)).to(device)
    test_logits = predict_logits(model, batcher, torch.arange(len(test_array)),
                                 batch_size=recipe.data.eval_batch_size, bf16=bf16, desc="test")  # fmt: skip
    meta.update(epochs=recipe.optim.epochs, device=str(device), bf16=bf16, train_rows=len(rows), valid_rows=len(valid),
                final=history[-1])  # fmt: skip
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(meta, sort_keys=False))
    if fold is not None:
        valid_ids = np.array([comp.train_ids[i] for i in valid_rows])
        write_atomic(run_dir / "oof.npz", lambda p: np.savez(p, ids=valid_ids, logits=oof_logits,
                                                               labels=labels[valid].numpy()))  # fmt: skip
    write_atomic(run_dir / "test.npz", lambda p: np.savez(p, ids=np.array(comp.test_ids), logits=test_logits))
    checkpoint = dict(meta, state_dict=model.state_dict(), mean=mean.flatten().tolist(), std=std.flatten().tolist())
    write_atomic(run_dir / "model.pt", lambda p: torch.save(checkpoint, p))
    log.info("%s: wrote %s", name, run_dir)
    return run_dir


def score_logits(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Validation loss and accuracy of logits against integer labels."""
    t = torch.from_numpy(logits)
    y = torch.from_numpy(labels)
    return {
        "valid_loss": float(torch.nn.functional.cross_entropy(t, y)),
        "valid_acc": float((t.argmax(1) == y).float().mean()),
    }
