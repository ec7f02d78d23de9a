"""Training and inference on in-memory uint8 image tensors: one Trainer per run. No file I/O here."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing
from timm.utils import ModelEmaV3
from torch.optim.swa_utils import update_bn

from foldwise.config import Recipe
from foldwise.progress import progress
from foldwise.training import stream
from foldwise.training.augment import crop_flip, random_resized_crop, to_model_input
from foldwise.training.distributed import Dist, gather_sharded, mean_across, shard


@dataclass
class Batcher:
    """Images (uint8 NHWC tensor, on the training device when it fits) and how to turn them into model input."""

    images: torch.Tensor | np.ndarray  # a numpy memory map on the streaming path
    mean: torch.Tensor  # (1, 3, 1, 1) on the device
    std: torch.Tensor
    device: torch.device
    channels_last: bool

    @property
    def streaming(self) -> bool:
        """True when images stay on disk and stream through DataLoader workers."""
        return isinstance(self.images, np.ndarray)

    def to_input(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC batch (any device) -> normalized model input on the device."""
        return to_model_input(batch.to(self.device, non_blocking=True), self.mean, self.std, self.channels_last)

    def model_input(self, index: torch.Tensor, padding: int = 0, hflip: bool = False, generator=None,
                    rrc: float = 0.0):  # fmt: skip
        """Normalized float batch for these rows, augmented when padding/hflip/rrc (min crop area) are set."""
        batch = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
        if padding or hflip:
            batch = crop_flip(batch, padding, hflip, generator)
        x = to_model_input(batch, self.mean, self.std, self.channels_last)
        return random_resized_crop(x, rrc, generator) if rrc else x


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """run.bf16 'auto' -> on only where bf16 is native: emulated bf16 on an AVX2-only CPU ran 7x slower here."""
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if not isinstance(setting, bool):
        raise ValueError(f"run.bf16 must be true, false or auto, got {setting!r}")
    return setting


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on the device when enabled, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The CPU generator itself on CPU; on an accelerator, a device generator seeded from it."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def tta_views(x: torch.Tensor, hflip: bool, translate: int) -> list[torch.Tensor]:
    """The batch, its mirror (hflip), and copies shifted by +-translate px diagonally (reflect-padded)."""
    views = [x]
    if translate:
        t = translate
        padded = F.pad(x, (t, t, t, t), mode="reflect")
        h, w = x.shape[2:]
        views += [padded[:, :, 2 * t : 2 * t + h, 2 * t : 2 * t + w], padded[:, :, :h, :w]]
    if hflip:
        views += [v.flip(3) for v in views]
    return views


BN_RECALIBRATION_IMAGES = 8192  # training images that set the EMA model's BatchNorm statistics before predicting


class Trainer:
    """Model, optimizer, schedule, EMA and augmentation of one run; `train_epoch` and `predict` are the whole API."""

    def __init__(self, model, optimizer, scheduler, batcher: Batcher, labels: torch.Tensor, recipe: Recipe,
                 num_classes: int, bf16: bool, dist: Dist | None = None) -> None:  # fmt: skip
        self.dist = dist or Dist()
        self.module = model  # the bare model: evaluated, averaged by EMA and saved
        if self.dist.enabled:  # gradients all-reduced across ranks by PyTorch DDP
            ids = [batcher.device.index] if batcher.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if recipe.run.compile:
            model = torch.compile(model)  # shares the parameters of self.module, which stays uncompiled for saving
        self.model, self.optimizer, self.scheduler, self.batcher = model, optimizer, scheduler, batcher
        self.labels, self.data, self.optim, self.bf16 = labels, recipe.data, recipe.optim, bf16
        o = recipe.optim
        self.ema = ModelEmaV3(self.module, decay=o.ema_decay, use_warmup=o.ema_warmup) if o.ema_decay else None
        d = recipe.data
        self.mixup = (
            Mixup(
                mixup_alpha=d.mixup,
                cutmix_alpha=d.cutmix,
                label_smoothing=recipe.optim.label_smoothing,
                num_classes=num_classes,
            )  # fmt: skip
            if d.mixup or d.cutmix
            else None
        )
        device = str(batcher.device)
        self.erase = RandomErasing(d.random_erasing, mode="pixel", device=device) if d.random_erasing else None
        self.step, self.num_classes = 0, num_classes
        self.bn_rows: torch.Tensor | None = None  # training rows for recalibrate_bn (set by the caller)
        self.recalibrated_at = -1

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against hard labels, or against mixup's soft targets."""
        if y.ndim == 2:
            return torch.sum(-y * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        return F.cross_entropy(logits, y, label_smoothing=self.optim.label_smoothing)

    def train_epoch(self, rows: torch.Tensor, generator: torch.Generator, desc: str = "train") -> float:
        """One pass over `rows` in a seeded random order (this rank's share under DDP); returns the mean loss."""
        self.model.train()
        bs = self.data.batch_size // self.dist.world  # the global batch is split over the ranks
        order = shard(rows[torch.randperm(len(rows), generator=generator)], self.dist)
        # Same step count on every rank (DDP needs it); drop the ragged last batch (BatchNorm, mixup want full ones).
        n_batches = max(1, (len(rows) // self.dist.world) // bs)
        total = torch.zeros((), device=self.batcher.device)
        for x, y in progress(self._train_batches(order, n_batches, bs, generator), total=n_batches, desc=desc,
                             leave=False, unit="batch"):  # fmt: skip
            if self.mixup is not None and len(x) % 2 == 0:
                x, y = self.mixup(x, y)
            with autocast(self.batcher.device, self.bf16):
                loss = self.loss(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.optim.clip_grad:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.clip_grad)
            self.optimizer.step()
            self.step += 1
            self.scheduler.step_update(num_updates=self.step)
            if self.ema is not None:
                self.ema.update(self.module, step=self.step)
            total += loss.detach()  # stays on the device: no host sync per step
        return mean_across(float(total) / n_batches, self.dist)

    def _train_batches(self, order: torch.Tensor, n_batches: int, bs: int, generator: torch.Generator):
        """(augmented input, labels) per step: gathered from resident images, or streamed from workers."""
        device = self.batcher.device
        if self.batcher.streaming:  # crop/flip/erasing happen per image in the workers (albumentations)
            seed = int(torch.randint(2**31, (1,), generator=generator))
            loader = stream.batches(self.batcher.images, self.labels, order[: n_batches * bs], bs, self.data, seed,
                                    pin=device.type == "cuda")  # fmt: skip
            for u8, y in loader:
                yield self.batcher.to_input(u8), y.to(device, non_blocking=True)
            return
        device_generator = _device_generator(generator, device)  # one per epoch, drawn from the seeded stream
        for i in range(n_batches):
            index = order[i * bs : (i + 1) * bs]
            x = self.batcher.model_input(index, self.data.crop_padding, self.data.hflip, generator=device_generator,
                                         rrc=self.data.random_resized_crop)  # fmt: skip
            if self.erase is not None:
                x = self.erase(x)
            yield x, self.labels[index].to(device, non_blocking=True)

    @property
    def uses_tta(self) -> bool:
        """predict() averages more views than the plain one (see tta_views)."""
        return self.data.tta_hflip or self.data.tta_translate > 0

    @property
    def final_model(self):
        """The weights that are evaluated, predicted with and saved: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.module

    def plain_inputs(self, rows: torch.Tensor, bs: int):
        """Unaugmented model inputs for `rows`, `bs` at a time (gathered from resident images, or streamed)."""
        if self.batcher.streaming:  # no augmentation and no labels (test images have none): images only
            loader = stream.batches(self.batcher.images, None, rows, bs, None, 0, self.batcher.device.type == "cuda")
            return (self.batcher.to_input(u8) for u8 in loader)
        return (self.batcher.model_input(rows[start : start + bs]) for start in range(0, len(rows), bs))

    @torch.no_grad()
    def recalibrate_bn(self) -> None:
        """Recompute the EMA model's BatchNorm statistics on the first BN_RECALIBRATION_IMAGES training rows (plain
        images, the same rows on every rank, no random draw), once per step count, as SWA does (`update_bn`).

        EMA-averaged running statistics belong to no single set of weights; on a short run (few steps at a high
        learning rate) that left the EMA model at chance level (speed recipe on digits: 10% vs 97% recalibrated).
        """
        if self.ema is None or self.bn_rows is None or self.recalibrated_at == self.step:
            return
        model = self.ema.module
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            with autocast(self.batcher.device, self.bf16):
                update_bn(self.plain_inputs(self.bn_rows[:BN_RECALIBRATION_IMAGES], self.data.batch_size), model)
        self.recalibrated_at = self.step

    @torch.no_grad()
    def predict(self, rows: torch.Tensor, desc: str = "predict", tta: bool = True) -> np.ndarray:
        """float32 logits (len(rows), C) of the final model, in the order of `rows` (view-averaged with the recipe's
        TTA unless `tta` is False: the per-epoch learning curve is scored on the plain images, which is 2-6x cheaper).

        Under DDP each rank predicts every world-th row and the results are gathered, so every rank returns all rows.
        """
        self.recalibrate_bn()
        model = self.final_model.eval()
        mine, out, bs = shard(rows, self.dist), [], self.data.eval_batch_size
        inputs = self.plain_inputs(mine, bs)
        for x in progress(inputs, total=-(-len(mine) // bs), desc=desc, leave=False, unit="batch"):
            with autocast(self.batcher.device, self.bf16):
                views = tta_views(x, self.data.tta_hflip, self.data.tta_translate) if tta else [x]
                out.append(torch.stack([model(v).float() for v in views]).mean(0))
        local = torch.cat(out) if out else torch.zeros((0, self.num_classes), device=self.batcher.device)
        return gather_sharded(local, len(rows), self.dist).cpu().numpy().astype(np.float32)

    def state_dict(self) -> dict:
        """Everything needed to continue training where it stopped (the caller saves the RNG streams)."""
        return {
            "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step,
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`."""
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
