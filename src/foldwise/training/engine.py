"""The Trainer: one run's model, optimizer, schedule, EMA and mixup; trains epochs and predicts any image set.
No file I/O here (train.py reads and writes; checkpoint.py saves and restores the Trainer's state)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.utils import ModelEmaV3
from torch.optim.swa_utils import update_bn

from foldwise.config import DataConfig, Recipe
from foldwise.errors import FoldwiseError
from foldwise.progress import progress
from foldwise.training.augment import view_mean
from foldwise.training.device import autocast
from foldwise.training.distributed import Dist, gather_sharded, mean_across, shard
from foldwise.training.inputs import Inputs
from foldwise.training.optim import create_optimizer_and_scheduler, set_head_phase

FLIP_STREAM = 104_729  # seed offset of the alternating flip's coins
BN_RECALIBRATION_IMAGES = 8192  # training images that set the EMA model's BatchNorm statistics before predicting


@dataclass(frozen=True)
class TrainingSet:
    """The images a run trains on and the rows of them it uses."""

    inputs: Inputs  # the training images (or their cached features)
    labels: torch.Tensor  # (N,) class index of every row of `inputs`, on the CPU
    rows: torch.Tensor  # the rows this run trains on
    num_classes: int
    bn_rows: torch.Tensor  # training rows whose plain images set the EMA model's BatchNorm statistics
    seed: int = 0  # the run's seed: draws the images' first flips under data.hflip_alternate


def wrapped(model, recipe: Recipe, dist: Dist, device: torch.device):
    """The module the training steps call: under DDP (gradients all-reduced across ranks; SyncBatchNorm on CUDA when
    run.sync_bn), compiled when run.compile; it shares its parameters with the bare model, which is what is saved."""
    if dist.enabled:
        if recipe.run.sync_bn and device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        index = (
            device.index if device.index is not None else torch.cuda.current_device() if device.type == "cuda" else None
        )
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=None if index is None else [index])
    if recipe.run.compile:
        model = torch.compile(model)
    return model


IMBALANCED = 0.1  # data.sampler auto balances when the smallest class has under this share of the largest's rows


def chosen_sampler(setting: str, data: TrainingSet) -> str:
    """'balanced' or 'none': the setting, or for 'auto' whether the training rows' classes are imbalanced."""
    if setting != "auto":
        return setting
    counts = torch.bincount(data.labels[data.rows], minlength=data.num_classes)
    counts = counts[counts > 0]
    return "balanced" if len(counts) > 1 and counts.min() < IMBALANCED * counts.max() else "none"


def balanced_weights(data: TrainingSet) -> torch.Tensor:
    """Cross-entropy class weights n / (C * class size) over the training rows (scikit-learn's "balanced")."""
    counts = torch.bincount(data.labels[data.rows], minlength=data.num_classes).double()
    return (len(data.rows) / (data.num_classes * counts.clamp(min=1))).float()


class Lookahead:
    """airbench's lookahead (after hlb-CIFAR10): a slow copy of the weights and BatchNorm statistics; every EVERY
    steps, and at each epoch's end, it moves towards the live weights by 1 - rho and the live weights are set to it,
    with rho = base x (step / total)^3, so it barely acts early and averages strongly at the end.

    airbench ends each epoch by resetting the live weights to the slow copy, dropping the steps since the last
    update: harmless at its 48 steps per epoch, but with 4 steps per epoch (digits) nothing was ever kept. Here the
    epoch's end is one more update instead."""

    EVERY = 5

    def __init__(self, module: torch.nn.Module, base: float):
        self.base = base
        self.slow = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int, total: int, epoch_end: bool = False) -> None:
        """After optimizer step `step` of `total` (every EVERY steps, or whenever `epoch_end`)."""
        if step % self.EVERY == 0 or epoch_end:
            rho = self.base * min(step / max(total, 1), 1.0) ** 3
            state = module.state_dict()
            for key, slow in self.slow.items():
                slow.lerp_(state[key], 1.0 - rho)
                state[key].copy_(slow)


def first_flips(data: TrainingSet) -> torch.Tensor:
    """airbench's alternating flip: whether each image is mirrored in even epochs (a seeded coin per row, the same
    on every rank and after a resume); odd epochs show the other side."""
    coins = torch.Generator().manual_seed(data.seed + FLIP_STREAM)  # not the batch order's stream (same seed)
    return torch.rand(len(data.labels), generator=coins) < 0.5


class Trainer:
    """Everything one run needs to train, given at construction: `train_epoch()`, `predict(inputs, rows)`, and
    `state_dict()` / `load_state_dict()` for checkpoints."""

    def __init__(self, model, recipe: Recipe, data: TrainingSet, epochs: int, bf16: bool, dist: Dist | None = None):
        self.dist, self.data, self.bf16 = dist or Dist(), data, bf16
        self.batch, self.optim, self.device = recipe.data, recipe.optim, data.inputs.device
        if recipe.data.batch_size % self.dist.world:
            raise FoldwiseError(
                f"data.batch_size {recipe.data.batch_size} does not split over {self.dist.world} "
                "ranks; make it a multiple of the number of processes."
            )
        self.module = model  # the bare model: evaluated, averaged by EMA and saved
        steps_per_epoch = max(1, len(data.rows) // recipe.data.batch_size)
        self.steps_per_epoch = steps_per_epoch
        self.optimizer, self.scheduler = create_optimizer_and_scheduler(model, recipe.optim, steps_per_epoch, epochs)
        self.model = wrapped(model, recipe, self.dist, self.device)
        optim, batch = recipe.optim, recipe.data
        self.ema = ModelEmaV3(model, decay=optim.ema_decay, use_warmup=optim.ema_warmup) if optim.ema_decay else None
        self.lookahead = Lookahead(model, optim.lookahead) if optim.lookahead else None
        self.class_weights = balanced_weights(data) if optim.class_weights == "balanced" else None
        self.sampler = chosen_sampler(batch.sampler, data)
        mixing = dict(mixup_alpha=batch.mixup, cutmix_alpha=batch.cutmix, label_smoothing=optim.label_smoothing)
        self.mixup = Mixup(**mixing, num_classes=data.num_classes) if batch.mixup or batch.cutmix else None
        self.step, self.recalibrated_at = 0, -1
        self.first_flips = first_flips(data) if batch.hflip and batch.hflip_alternate else None
        self.head_steps = round(optim.head_epochs * steps_per_epoch)  # only the classifier learns until then

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against hard labels, or against mixup's soft targets."""
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        if y.ndim == 2:
            per_class = -y * F.log_softmax(logits.float(), dim=-1)
            return torch.sum(per_class if weights is None else per_class * weights, dim=-1).mean()
        return F.cross_entropy(logits, y, weight=weights, label_smoothing=self.optim.label_smoothing)

    def train_epoch(self, generator: torch.Generator, desc: str = "train") -> float:
        """One pass over the training rows in a seeded random order (this rank's share under DDP); the mean loss."""
        self.model.train()
        rows = self.data.rows
        batch_size = self.batch.batch_size // self.dist.world  # the global batch is split over the ranks
        order = shard(rows[self.epoch_order(generator)], self.dist)
        # Same step count on every rank (DDP needs it); drop the ragged last batch (BatchNorm, mixup want full ones).
        steps = max(1, (len(rows) // self.dist.world) // batch_size)
        order = order[: steps * batch_size]
        flips = None
        if self.first_flips is not None:  # epochs 1, 3, ... mirror what epochs 0, 2, ... showed (alternating flip)
            flips = self.first_flips[order] ^ bool(self.step // self.steps_per_epoch % 2)
        batches = self.data.inputs.train_batches(
            order, self.data.labels, batch_size, generator, self.dist.rank, self.dist.world, flips
        )
        total = torch.zeros((), device=self.device)
        for x, y in progress(batches, total=steps, desc=desc, leave=False, unit="batch"):
            total += self.train_step(x, y)  # stays on the device: no host sync per step
        if self.lookahead is not None:
            self.lookahead.update(self.module, self.step, self.total_steps, epoch_end=True)
        return mean_across(total.double() / steps, self.dist)

    def set_epochs(self, epochs: int) -> None:
        """Stretch or shrink the learning-rate schedule so it ends (fully annealed) after `epochs` epochs, from
        wherever it is now (a time budget re-planning the run, as Ultralytics' time= does)."""
        warmup = getattr(self.scheduler, "warmup_t", 0)
        self.scheduler.t_initial = max(epochs * self.steps_per_epoch - warmup, 1)

    @property
    def total_steps(self) -> int:
        """Optimizer steps the schedule runs for (warmup included); set_epochs moves it."""
        return self.scheduler.t_initial + getattr(self.scheduler, "warmup_t", 0)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """Positions into the training rows for one epoch: a permutation, or with data.sampler balanced a draw with
        replacement where every class is equally likely."""
        rows = self.data.rows
        if self.sampler != "balanced":
            return torch.randperm(len(rows), generator=generator)
        labels = self.data.labels[rows]
        weights = (1.0 / torch.bincount(labels, minlength=self.data.num_classes).clamp(min=1).double())[labels]
        return torch.multinomial(weights, len(rows), replacement=True, generator=generator)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, loss, backward, optimizer and schedule step, EMA update; the detached loss."""
        if self.mixup is not None and len(x) % 2 == 0:
            x, y = self.mixup(x, y)
        with autocast(self.device, self.bf16):
            loss = self.loss(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.clip_grad)
        self.optimizer.step()
        self.step += 1
        if self.head_steps:
            set_head_phase(self.optimizer, self.step < self.head_steps)
        self.scheduler.step_update(num_updates=self.step)
        if self.ema is not None:
            self.ema.update(self.module, step=self.step)
        if self.lookahead is not None:
            self.lookahead.update(self.module, self.step, self.total_steps)
        return loss.detach()

    @property
    def uses_tta(self) -> bool:
        """predict() averages more views than the plain one (see augment.tta_views)."""
        return self.batch.tta_hflip or self.batch.tta_translate > 0

    @property
    def final_model(self):
        """The weights that are evaluated, predicted with and saved: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.module

    @torch.no_grad()
    def recalibrate_bn(self) -> None:
        """Recompute the EMA model's BatchNorm statistics on up to BN_RECALIBRATION_IMAGES of the training set's
        `bn_rows` (plain images, the same seeded spread of rows on every rank), once per step count, as SWA does.

        EMA-averaged running statistics belong to no single set of weights; on a short run (few steps at a high
        learning rate) that left the EMA model at chance level (speed recipe on digits: 10% vs 97% recalibrated).
        """
        if self.ema is None or self.recalibrated_at == self.step:
            return
        model = self.ema.module
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            rows = self.data.bn_rows[:BN_RECALIBRATION_IMAGES]
            with autocast(self.device, self.bf16):
                update_bn(self.data.inputs.eval_batches(rows, self.batch.batch_size), model)
        self.recalibrated_at = self.step

    def predict(self, inputs: Inputs, rows: torch.Tensor | None = None, desc: str = "predict", tta: bool = True):
        """float32 logits of the final model for `rows` of `inputs` (all by default); see predict_logits. The per-
        epoch learning curve passes tta=False: scored on the plain images, 2-6x cheaper."""
        self.recalibrate_bn()
        return predict_logits(
            self.final_model,
            inputs,
            rows,
            self.batch,
            self.bf16,
            self.data.num_classes,
            tta=tta,
            dist=self.dist,
            desc=desc,
        )

    def state_dict(self) -> dict:
        """Everything needed to continue training where it stopped (checkpoint.py adds the RNG streams)."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "lookahead": self.lookahead.slow if self.lookahead else None,
            "step": self.step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`."""
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.lookahead is not None:
            for key, value in state["lookahead"].items():
                self.lookahead.slow[key].copy_(value)
        self.step = state["step"]


@torch.no_grad()
def predict_logits(
    model,
    inputs: Inputs,
    rows: torch.Tensor | None,
    batch: DataConfig,
    bf16: bool,
    num_classes: int,
    tta: bool = True,
    dist: Dist | None = None,
    desc: str = "predict",
) -> np.ndarray:
    """float32 logits (len(rows), C) of `model` for `rows` of `inputs` (all of them when None), in their order,
    averaged over the recipe's test-time views (`batch.tta_*`) unless `tta` is False. Under DDP each rank predicts
    every world-th row and the results are gathered, so every rank returns all rows."""
    dist = dist or Dist()
    rows = torch.arange(len(inputs)) if rows is None else rows
    model, share = model.eval(), shard(rows, dist)
    hflip, translate = (batch.tta_hflip, batch.tta_translate) if tta else (False, 0)
    out = []
    batches = inputs.eval_batches(share, batch.eval_batch_size)
    for x in progress(batches, total=-(-len(share) // batch.eval_batch_size), desc=desc, leave=False, unit="batch"):
        with autocast(inputs.device, bf16):
            out.append(view_mean(model, x, hflip, translate))
    local = torch.cat(out) if out else torch.zeros((0, num_classes), device=inputs.device)
    return gather_sharded(local, len(rows), dist).cpu().numpy().astype(np.float32)
