"""Train one fold (or the full retrain) and write its artifacts: history.csv, config.yaml, oof.npz, test.npz, model.pt.

foldwise train input/digits -c configs/cpu-cnn.yaml --fold all
foldwise train input/digits -c configs/cpu-cnn.yaml --full
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from foldwise.config import Recipe
from foldwise.data.cache import cached_images
from foldwise.data.competition import Competition
from foldwise.data.folds import read_folds
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_atomic, write_text_atomic
from foldwise.training import features
from foldwise.training.augment import to_model_input
from foldwise.training.distributed import init_distributed, local_device
from foldwise.training.engine import Batcher, Trainer, resolve_bf16
from foldwise.training.models import create_model, normalization, resolve_weights_file
from foldwise.training.optim import create_optimizer_and_scheduler
from foldwise.training.runs import RUN_IDENTITY, resolve_recipe, run_meta, skip_finished
from foldwise.training.stream import choose_pipeline
from foldwise.workspace import Workspace

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"  # written after every epoch; removed once model.pt is written


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FoldwiseError(f"run.device={name!r} but no CUDA GPU is visible; use run.device=auto or cpu.")
    return torch.device(name)


def init_data_dependent(model, images: np.ndarray, rows: list[int], mean, std, channels_last: bool) -> None:
    """Models with a data-dependent init (the speed net's whitening stem) see up to 5,000 training-fold images."""
    init = getattr(model, "init_whitening", None)
    if init is None:
        return
    sample = torch.from_numpy(np.array(images[sorted(rows)[:5000]]))
    init(to_model_input(sample.to(mean.device), mean, std, channels_last))


def resident(images: np.ndarray, pipeline: str, device: torch.device):
    """The tensor path wraps the memory-mapped uint8 cache (the features path, its feature array) as a tensor (no
    copy in RAM; pages load on first use) and moves it to the GPU when there is one; the streaming path keeps the
    memory map for its workers."""
    return images if pipeline == "stream" else torch.from_numpy(images).to(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, numpy (timm's Mixup) and python (timm's RandomErasing); return the batch-order generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def rng_state(generator: torch.Generator) -> dict:
    """Every random stream a run draws from, for an exact resume."""
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}  # fmt: skip
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


def should_stop(history: list[dict], patience: int) -> bool:
    """Early stopping: the last `patience` epochs brought no valid loss below the best one before them."""
    if patience <= 0 or len(history) <= patience:
        return False
    losses = [h["valid_loss"] for h in history]
    return min(losses[-patience:]) >= min(losses[:-patience])


def full_epochs(run_dir: Path, recipe: Recipe) -> tuple[int, str]:
    """Epochs for the full retrain: the median of the finished folds' epochs (early stopping), else the recipe's."""
    folds = [yaml.safe_load(p.read_text()) for p in sorted(run_dir.parent.glob("fold*/config.yaml"))]
    counts = [m["epochs"] for m in folds if m.get("recipe") == recipe.to_dict() and "epochs" in m]
    if not counts or recipe.optim.patience <= 0:
        return recipe.optim.epochs, "recipe"
    return int(np.median(counts)), f"median of {len(counts)} folds' early-stopped epochs {counts}"


def resume(run_dir: Path, meta: dict, trainer: Trainer, generator: torch.Generator) -> tuple[int, list[dict]]:
    """(last finished epoch, history) from run_dir/last.pt when it belongs to this exact run; (0, []) otherwise."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return 0, []
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for key in (*RUN_IDENTITY, "seed"):
        if ckpt["meta"].get(key) != meta.get(key):
            raise FoldwiseError(f"{path}: an unfinished run with a different {key}; pass --force to start over.")
    trainer.load_state_dict(ckpt["trainer"])
    set_rng_state(ckpt["rng"], generator)
    log.info("%s: resuming after epoch %d (step %d)", run_dir, ckpt["epoch"], trainer.step)
    return ckpt["epoch"], ckpt["history"]


def train_run(comp: Competition, recipe: Recipe, fold: int | None, ws: Workspace, force: bool = False) -> Path:
    """Train one fold (fold=None: all labeled data) and write its artifacts; skip when finished, resume when killed."""
    recipe = resolve_recipe(recipe, comp)
    folds = read_folds(ws.folds_csv(comp.name), comp)
    run_dir = ws.run_dir(comp.name, recipe.name, fold)
    meta = run_meta(comp, recipe, fold, ws)
    if not force and skip_finished(run_dir, fold, meta):
        return run_dir
    if force:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)

    row_of = {id_: i for i, id_ in enumerate(comp.train_ids)}
    fold_of = dict(zip(folds["id"], folds["fold"]))
    valid_rows = [row_of[i] for i in comp.train_ids if fold is not None and fold_of[i] == fold]
    train_rows = [row_of[i] for i in comp.train_ids if fold is None or fold_of[i] != fold]
    if fold is not None and not valid_rows:
        raise FoldwiseError(f"{ws.folds_csv(comp.name)}: fold {fold} has no images; choose an existing fold.")
    device = resolve_device(recipe.run.device)
    d = init_distributed(device)
    device = local_device(device, d)
    size = recipe.data.image_size
    # One process decodes a missing cache; other ranks (or parallel folds) wait on its lock, then map the file.
    train_array = cached_images(comp.train_images, size, ws.cache_dir(comp.name), "train")
    test_array = cached_images(comp.test_images, size, ws.cache_dir(comp.name), "test")

    if recipe.run.threads and device.type == "cpu":
        torch.set_num_threads(recipe.run.threads)
    bf16 = resolve_bf16(recipe.run.bf16, device)
    generator = seed_everything(meta["seed"])
    model = create_model(recipe.model, len(comp.classes)).to(device)
    if recipe.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in normalization(model))
    init_data_dependent(model, train_array, train_rows, mean, std, recipe.run.channels_last)
    trained, trainer_recipe = model, recipe
    if recipe.model.cache_features:  # the classifier alone trains, on backbone features computed once
        features.check_recipe(recipe)
        spec = recipe.model.pretrained_file
        weights_file = resolve_weights_file(spec)[0] if spec else None
        train_array, test_array = features.cached_features(
            model, train_array, test_array, ws.cache_dir(comp.name), recipe, weights_file, mean, std, device, bf16
        )
        pipeline, trained, trainer_recipe = "features", model.get_classifier(), features.head_recipe(recipe)
        batcher = features.FeatureBatcher(resident(train_array, pipeline, device), device)
    else:
        pipeline = choose_pipeline(recipe.data.pipeline, len(train_array) + len(test_array), size, device)
        batcher = Batcher(resident(train_array, pipeline, device), mean, std, device, recipe.run.channels_last)
    meta["pipeline"] = pipeline
    labels = torch.tensor(comp.train_labels, dtype=torch.long)
    rows, valid = torch.tensor(train_rows), torch.tensor(valid_rows, dtype=torch.long)
    epochs, meta["epochs_source"] = (
        (recipe.optim.epochs, "recipe") if fold is not None else full_epochs(run_dir, recipe)
    )
    steps_per_epoch = max(1, len(rows) // recipe.data.batch_size)
    optimizer, scheduler = create_optimizer_and_scheduler(trained, recipe.optim, steps_per_epoch, epochs)
    trainer = Trainer(trained, optimizer, scheduler, batcher, labels, trainer_recipe, len(comp.classes), bf16, d)
    trainer.bn_rows = rows  # sets the EMA model's BatchNorm statistics before each prediction
    done, history = resume(run_dir, meta, trainer, generator)

    name = f"{recipe.name} {'full' if fold is None else f'fold {fold}'}"
    log.info("%s: %d train / %d valid images, %s%s, %s path, bf16 %s, seed %d", name, len(rows), len(valid), device,
             f" x {d.world} ranks (DDP)" if d.enabled else "", pipeline, bf16, meta["seed"])  # fmt: skip
    epoch_logits = None
    for epoch in range(done + 1, epochs + 1):
        if fold is not None and should_stop(history, recipe.optim.patience):
            break
        start = time.perf_counter()
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row["train_loss"] = trainer.train_epoch(rows, generator, desc=f"{name} epoch {epoch}/{epochs}")
        if len(valid):  # the learning curve, on the plain images; the OOF logits below get the recipe's TTA
            epoch_logits = trainer.predict(valid, desc="valid", tta=False)
            row.update(score_logits(epoch_logits, labels[valid].numpy()))
        row["seconds"] = round(time.perf_counter() - start, 2)
        history.append(row)
        if not d.is_main:
            continue
        log.info("%s epoch %d: %s", name, epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        write_atomic(run_dir / "history.csv", lambda p: pd.DataFrame(history).to_csv(p, index=False))
        checkpoint = {"meta": meta, "trainer": trainer.state_dict(), "rng": rng_state(generator), "epoch": epoch,
                      "history": history}  # fmt: skip
        write_atomic(run_dir / CHECKPOINT, lambda p, c=checkpoint: torch.save(c, p))

    if len(valid):
        # Without TTA the last epoch's logits are the OOF logits; predict again after a resume with no epoch left.
        oof_logits = trainer.predict(valid, desc="valid") if trainer.uses_tta or epoch_logits is None else epoch_logits
        meta["oof_score"] = score_logits(oof_logits, labels[valid].numpy())  # with TTA; history.csv is without
    trainer.recalibrate_bn()  # on the training images, before they are swapped for the test images
    batcher.images = resident(test_array, pipeline, device)
    test_logits = trainer.predict(torch.arange(len(test_array)), desc="test")
    d.barrier()
    if not d.is_main:  # rank 0 alone writes the artifacts
        return run_dir
    meta.update(epochs=len(history), device=str(device), world_size=d.world, bf16=bf16)
    meta.update(train_rows=len(rows), valid_rows=len(valid), final=history[-1])
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(meta, sort_keys=False))
    if fold is not None:
        valid_ids = np.array([comp.train_ids[i] for i in valid_rows])
        write_atomic(run_dir / "oof.npz", lambda p: np.savez(p, ids=valid_ids, logits=oof_logits,
                                                               labels=labels[valid].numpy()))  # fmt: skip
    write_atomic(run_dir / "test.npz", lambda p: np.savez(p, ids=np.array(comp.test_ids), logits=test_logits))
    weights = trainer.final_model.state_dict()  # the EMA's when on
    if trained is not model:  # only the classifier trained: it goes back into the whole model for model.pt
        trained.load_state_dict(weights)
        weights = model.state_dict()
    final = dict(meta, state_dict=weights, mean=mean.flatten().tolist(), std=std.flatten().tolist())
    write_atomic(run_dir / "model.pt", lambda p: torch.save(final, p))
    (run_dir / CHECKPOINT).unlink(missing_ok=True)  # model.pt holds the final weights; drop optimizer state
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
