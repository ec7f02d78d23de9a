"""train_one_epoch / predict_logits on in-memory uint8 image tensors. No file I/O here."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from foldwise.augment import crop_flip, to_model_input
from foldwise.progress import progress


@dataclass
class Batcher:
    """Images (uint8 NHWC tensor, on the training device when it fits) and how to turn them into model input."""

    images: torch.Tensor
    mean: torch.Tensor  # (1, 3, 1, 1) on the device
    std: torch.Tensor
    device: torch.device
    channels_last: bool

    def model_input(self, index: torch.Tensor, padding: int = 0, hflip: bool = False, generator=None):
        """Normalized float batch for these rows, augmented when padding/hflip are set."""
        batch = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
        if padding or hflip:
            batch = crop_flip(batch, padding, hflip, generator)
        return to_model_input(batch, self.mean, self.std, self.channels_last)


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


def train_one_epoch(
    model, batcher: Batcher, labels: torch.Tensor, rows: torch.Tensor, optimizer, scheduler, *,
    batch_size: int, padding: int, hflip: bool, label_smoothing: float, bf16: bool,
    generator: torch.Generator, step: int, desc: str = "train",
) -> tuple[float, int]:  # fmt: skip
    """One pass over `rows` in a seeded random order; returns (mean train loss, optimizer steps taken so far)."""
    model.train()
    order = rows[torch.randperm(len(rows), generator=generator)]
    n_batches = max(1, len(order) // batch_size)  # drop the ragged last batch (BatchNorm hates tiny batches)
    total = torch.zeros((), device=batcher.device)
    for i in progress(range(n_batches), desc=desc, leave=False, unit="batch"):
        index = order[i * batch_size : (i + 1) * batch_size]
        x = batcher.model_input(index, padding, hflip, generator=_device_generator(generator, batcher.device))
        y = labels[index].to(batcher.device, non_blocking=True)
        with autocast(batcher.device, bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        scheduler.step_update(num_updates=step)
        total += loss.detach()  # stays on the device: no host sync per step
    return float(total) / n_batches, step


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The CPU generator itself on CPU; on an accelerator, a device generator seeded from it."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def predict_logits(model, batcher: Batcher, rows: torch.Tensor, *, batch_size: int, bf16: bool, desc: str = "predict"):
    """float32 logits (len(rows), num_classes) as a numpy array, in the order of `rows`."""
    model.eval()
    out = []
    for start in progress(range(0, len(rows), batch_size), desc=desc, leave=False, unit="batch"):
        x = batcher.model_input(rows[start : start + batch_size])
        with autocast(batcher.device, bf16):
            out.append(model(x).float())
    return torch.cat(out).cpu().numpy().astype(np.float32)
