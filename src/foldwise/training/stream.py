"""The streaming input path: rows of the memory-mapped uint8 cache, augmented by albumentations in DataLoader workers.

Used when the decoded images would not fit comfortably in the training device's memory (or `data.pipeline: stream`);
the tensor path (everything resident, batched augmentation on the device) is faster whenever it fits.
"""

from __future__ import annotations

import os

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from foldwise.config import DataConfig
from foldwise.workers import default_workers

RESIDENT_SHARE = 0.4  # the tensor path may use up to this share of the device's memory for the images


def choose_pipeline(setting: str, n_images: int, size: int, device: torch.device) -> str:
    """'tensor' or 'stream': `data.pipeline` when set, else by whether the uint8 images fit the device's memory."""
    if setting in ("tensor", "stream"):
        return setting
    if setting != "auto":
        raise ValueError(f"data.pipeline must be auto, tensor or stream, got {setting!r}")
    needed = n_images * size * size * 3
    if device.type == "cuda":  # the GPU's total memory: free memory counts what the caching allocator still holds
        # from an earlier fold, so it would flip folds of one process (and ranks) between paths
        available = torch.cuda.get_device_properties(device).total_memory
    else:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return "tensor" if needed <= RESIDENT_SHARE * available else "stream"


def train_transform(data: DataConfig, seed: int, random_flip: bool = True) -> A.Compose:
    """The streaming path's augmentation, per image in the workers: the steps the tensor path runs in batches
    (reflect-padded random crop, random-resized-crop, flip unless the flips are given per row, erasing)."""
    size, pad = data.image_size, data.crop_padding
    steps = [
        A.PadIfNeeded(size + 2 * pad, size + 2 * pad, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(size, size),
    ]
    if data.random_resized_crop:
        steps.append(A.RandomResizedCrop((size, size), scale=(data.random_resized_crop, 1.0)))
    if data.hflip and random_flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if data.random_erasing:
        steps.append(
            A.CoarseDropout(
                num_holes_range=(1, 1),
                hole_height_range=(0.1, 0.5),
                hole_width_range=(0.1, 0.5),
                fill="random_uniform",
                p=data.random_erasing,
            )
        )
    return A.Compose(steps, seed=seed)


class CachedRows(Dataset):
    """Rows of the uint8 (N, H, W, 3) cache in a given order, optionally augmented and mirrored where `flips` (bool
    per position) says so; yields (uint8 HWC, label), or the image alone when there are no labels (prediction)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: torch.Tensor | None,
        rows: torch.Tensor,
        transform: A.Compose | None,
        flips: torch.Tensor | None = None,
    ):
        self.images, self.labels, self.rows, self.transform = images, labels, rows.tolist(), transform
        self.flips = None if flips is None else flips.tolist()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        image = np.asarray(self.images[self.rows[i]])  # one row read from the memory map
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        if self.flips is not None and self.flips[i]:  # the alternating flip (data.hflip_alternate)
            image = image[:, ::-1]
        image = torch.from_numpy(np.ascontiguousarray(image))
        return image if self.labels is None else (image, self.labels[self.rows[i]])


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    transform = info.dataset.transform
    if transform is not None:  # each worker its own stream, derived from the epoch's seed: reproducible
        transform.set_random_seed(info.seed % 2**31)


def batches(
    images: np.ndarray,
    labels: torch.Tensor | None,
    rows: torch.Tensor,
    batch_size: int,
    data: DataConfig | None,
    seed: int,
    pin: bool,
    workers: int | None = None,
    flips: torch.Tensor | None = None,
) -> DataLoader:
    """Batches of (uint8 NHWC, labels) in the order of `rows` (uint8 NHWC alone when `labels` is None), decoded and
    augmented in worker processes; mirrored where `flips` (bool per position of `rows`) says so, when given, instead
    of at random."""
    transform = train_transform(data, seed, random_flip=flips is None) if data is not None else None
    workers = default_workers() if workers is None else workers
    return DataLoader(
        CachedRows(images, labels, rows, transform, flips),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
