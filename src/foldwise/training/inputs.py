"""What the Trainer reads: one small interface with three implementations.

- ResidentImages: the decoded uint8 images as one tensor on the training device (the memory-mapped cache wrapped
  without a copy on the CPU), augmented in batches there. The fast path whenever the images fit.
- StreamedImages: rows of the memory-mapped cache, augmented per image by albumentations in DataLoader workers.
- CachedFeatures: a frozen backbone's feature vectors, one per image (no augmentation: they are computed once).

Each gives augmented training batches `(input, labels)` for an epoch's order and plain evaluation inputs for any
rows; the Trainer never asks which kind it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from timm.data.random_erasing import RandomErasing

from foldwise.config import DataConfig
from foldwise.training import stream
from foldwise.training.augment import crop_flip, random_resized_crop, to_model_input

RANK_STRIDE = 1_000_003  # seed offset between ranks' augmentation streams (a prime, so streams never coincide)


class Inputs(Protocol):
    """A set of images (or features) indexed by row, read through training and evaluation batches."""

    device: torch.device  # where the batches it yields live

    def __len__(self) -> int: ...

    def train_batches(
        self,
        order: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world: int = 1,
        flips: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented model input, labels) per step over `order` (a whole number of batches), on the device; `rank`
        of `world` processes draws its own augmentation; `flips` (bool per position of `order`, CPU) says which
        images are mirrored where the inputs can follow it (alternating flip), else the flips are random."""
        ...

    def eval_batches(self, rows: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        """Plain (unaugmented) model input for `rows`, `batch_size` at a time, on the device."""
        ...


def device_generator(generator: torch.Generator, device: torch.device, rank: int = 0, world: int = 1):
    """The augmentation stream of one epoch: the CPU generator itself in a one-process CPU run; otherwise a
    generator on the device seeded from it, offset by the rank, so that ranks draw different crops and flips while
    the shared generator (the batch order) advances alike on every rank."""
    if device.type == "cpu" and world == 1:
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed + RANK_STRIDE * rank)


class ResidentImages:
    """uint8 NHWC images held as one tensor (on the GPU when there is one); crop, flip, random-resized-crop and
    erasing run batched on the device."""

    def __init__(self, images: torch.Tensor, mean, std, channels_last: bool, augment: DataConfig | None = None):
        self.images, self.mean, self.std, self.channels_last = images, mean, std, channels_last
        self.device, self.augment = mean.device, augment
        erasing = augment.random_erasing if augment else 0
        self.erase = RandomErasing(erasing, mode="pixel", device=str(self.device)) if erasing else None

    def __len__(self) -> int:
        return len(self.images)

    def gather(
        self, index: torch.Tensor, generator: torch.Generator | None = None, flips: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalized float batch of these rows (`index` on the images' device), augmented when a generator is given
        (mirrored where `flips`, on the device, says so, when given)."""
        batch = self.images[index].to(self.device, non_blocking=True)
        aug = self.augment if generator is not None else None
        if aug and (aug.crop_padding or aug.hflip):
            batch = crop_flip(batch, aug.crop_padding, aug.hflip, generator, flips)
        x = to_model_input(batch, self.mean, self.std, self.channels_last)
        if aug and aug.random_resized_crop:
            x = random_resized_crop(x, aug.random_resized_crop, generator)
        return self.erase(x) if aug and self.erase is not None else x

    def train_batches(self, order, labels, batch_size, generator, rank: int = 0, world: int = 1, flips=None):
        """The epoch's order, flips and the labels move to the device once; each step gathers and augments there."""
        draws = device_generator(generator, self.device, rank, world)  # one per epoch, drawn from the seeded stream
        order, labels = order.to(self.images.device), labels.to(self.device)
        flips = None if flips is None else flips.to(self.device)
        for start in range(0, len(order), batch_size):
            index, positions = order[start : start + batch_size], slice(start, start + batch_size)
            yield self.gather(index, draws, None if flips is None else flips[positions]), labels[index.to(self.device)]

    def eval_batches(self, rows, batch_size):
        rows = rows.to(self.images.device)
        return (self.gather(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size))


class StreamedImages:
    """Rows of the memory-mapped uint8 cache, read and augmented (albumentations) in DataLoader worker processes;
    batches reach the device from pinned memory on CUDA."""

    def __init__(self, images: np.ndarray, mean, std, channels_last: bool, augment: DataConfig):
        self.images, self.mean, self.std, self.channels_last = images, mean, std, channels_last
        self.device, self.augment = mean.device, augment

    def __len__(self) -> int:
        return len(self.images)

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC batch from a worker -> normalized model input on the device."""
        return to_model_input(batch.to(self.device, non_blocking=True), self.mean, self.std, self.channels_last)

    def train_batches(self, order, labels, batch_size, generator, rank: int = 0, world: int = 1, flips=None):
        seed = int(torch.randint(2**31, (1,), generator=generator)) + RANK_STRIDE * rank  # the workers' stream
        pin = self.device.type == "cuda"
        loader = stream.batches(self.images, labels, order, batch_size, self.augment, seed, pin=pin, flips=flips)
        for batch, y in loader:
            yield self.to_device(batch), y.to(self.device, non_blocking=True)

    def eval_batches(self, rows, batch_size):
        loader = stream.batches(self.images, None, rows, batch_size, None, 0, pin=self.device.type == "cuda")
        return (self.to_device(batch) for batch in loader)


class CachedFeatures:
    """Feature vectors (N, F) of a frozen backbone, on the training device; the classifier trains on them as is."""

    def __init__(self, features: torch.Tensor, device: torch.device):
        self.features, self.device = features.to(device), device

    def __len__(self) -> int:
        return len(self.features)

    def train_batches(self, order, labels, batch_size, generator, rank: int = 0, world: int = 1, flips=None):
        order, labels = order.to(self.device), labels.to(self.device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield self.features[index], labels[index]

    def eval_batches(self, rows, batch_size):
        rows = rows.to(self.device)
        return (self.features[rows[start : start + batch_size]] for start in range(0, len(rows), batch_size))
