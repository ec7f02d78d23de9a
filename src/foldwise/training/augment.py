"""Batched augmentation on uint8 image tensors, on whatever device the images live (the GPU when there is one)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reflect_index(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Map out-of-range pixel indices back inside [0, size) by mirror reflection (like reflect padding)."""
    idx = idx.abs()
    return torch.where(idx >= size, 2 * (size - 1) - idx, idx)


def crop_flip(
    images: torch.Tensor,
    padding: int,
    hflip: bool,
    generator: torch.Generator | None = None,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random translation by up to `padding` px (reflect-padded crop) and random horizontal flip, per image; with
    `flips` (bool per image) those images are mirrored instead of a random half.

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
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    elif hflip:
        flip = torch.rand(n, 1, device=device, generator=generator) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def to_model_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 NHWC -> normalized float NCHW (channels_last memory when asked)."""
    x = images.permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def random_resized_crop(
    x: torch.Tensor, min_scale: float, generator: torch.Generator | None = None, ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """Inception-style random-resized-crop of a float NCHW batch, batched in one `grid_sample` (bilinear).

    Per image: an area fraction in [min_scale, 1] and an aspect ratio log-uniform in `ratio`, a random position
    inside the image, resampled back to the full size. The memory format of `x` is kept.
    """
    n, device = x.shape[0], x.device
    u = torch.rand(4, n, device=device, generator=generator)
    area = min_scale + (1 - min_scale) * u[0]
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1])
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width and height as fractions of the image's
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2] = (2 * u[2] - 1) * (1 - w)  # crop center in [-1, 1] coordinates, the crop inside the image
    theta[:, 1, 2] = (2 * u[3] - 1) * (1 - h)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


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


def view_mean(fn, x: torch.Tensor, hflip: bool, translate: int) -> torch.Tensor:
    """float32 mean of `fn` (a model's logits or features) over the test-time views of a batch (see tta_views)."""
    return torch.stack([fn(v).float() for v in tta_views(x, hflip, translate)]).mean(0)
