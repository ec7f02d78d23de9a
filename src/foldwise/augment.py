"""Batched augmentation on uint8 image tensors, on whatever device the images live (the GPU when there is one)."""

from __future__ import annotations

import torch


def reflect_index(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Map out-of-range pixel indices back inside [0, size) by mirror reflection (like reflect padding)."""
    idx = idx.abs()
    return torch.where(idx >= size, 2 * (size - 1) - idx, idx)


def crop_flip(
    images: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random translation by up to `padding` px (reflect-padded crop) and random horizontal flip, per image.

    `images` is uint8 NHWC; the result is uint8 NHWC. One gather, no padded copy of the batch.
    """
    n, h, w, _ = images.shape
    device = images.device
    rows = torch.arange(h, device=device).expand(n, h)
    cols = torch.arange(w, device=device).expand(n, w)
    if padding > 0:
        shift = torch.randint(-padding, padding + 1, (2, n, 1), device=device, generator=generator)
        rows = reflect_index(rows + shift[0], h)
        cols = reflect_index(cols + shift[1], w)
    if hflip:
        flip = torch.rand(n, 1, device=device, generator=generator) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def to_model_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 NHWC -> normalized float NCHW (channels_last memory when asked)."""
    x = images.permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
