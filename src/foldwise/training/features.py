"""Frozen-backbone features, computed once per image and cached: the classifier then trains on vectors.

With `model.freeze_backbone` + `model.cache_features`, every fold and the full retrain share one forward pass of
the backbone over the training and test images (averaged over the recipe's TTA views), stored under
`output/<comp>/cache/features-<key>.npz`. The key covers the weights file's bytes, the model, the image cache
(content-keyed itself), normalization, TTA and precision, so anything that changes the features gives a new file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from foldwise.config import Recipe
from foldwise.errors import FoldwiseError
from foldwise.fileio import exclusive, save_npz, sha256_file
from foldwise.progress import progress
from foldwise.training.augment import to_model_input, view_mean
from foldwise.training.device import autocast
from foldwise.training.probe import probe_batch

log = logging.getLogger(__name__)


def check_recipe(recipe: Recipe) -> None:
    """cache_features needs a frozen backbone, and no augmentation that only makes sense on pixels."""
    net, data = recipe.model, recipe.data
    if not net.freeze_backbone:
        raise FoldwiseError(
            "model.cache_features needs model.freeze_backbone: true (a backbone that trains changes its features)."
        )
    if data.cutmix or data.random_erasing or data.random_resized_crop:
        raise FoldwiseError(
            "model.cache_features: data.cutmix, data.random_erasing and data.random_resized_crop act on pixels, but "
            "the classifier trains on cached features; set them to 0 (data.mixup works on features)."
        )


def head_recipe(recipe: Recipe) -> Recipe:
    """The recipe the Trainer sees on features: pixel augmentation and TTA off (TTA is inside the features)."""
    data = replace(recipe.data, crop_padding=0, hflip=False, tta_hflip=False, tta_translate=0)
    return replace(recipe, data=data)


def backbone_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features (timm's forward_head(pre_logits=True)); forward_features for models without it."""
    features = model.forward_features(x)
    if hasattr(model, "forward_head"):
        return model.forward_head(features, pre_logits=True)
    return features.flatten(1)


@torch.no_grad()
def extract(
    model: nn.Module, images: np.ndarray, mean, std, recipe: Recipe, device: torch.device, bf16: bool, desc: str
) -> np.ndarray:
    """float32 (N, F) features of uint8 NHWC `images`, each the mean over the recipe's TTA views; in batches of the
    size the probe timed (on a CPU at most CPU_PROBE_PIXELS: at 224 px, batches of 64 ran at half the speed of 8)."""
    model.eval()
    data, batch_size, out = recipe.data, probe_batch(recipe, device), []
    for start in progress(range(0, len(images), batch_size), desc=desc, unit="batch"):
        batch = torch.from_numpy(np.asarray(images[start : start + batch_size])).to(device)
        x = to_model_input(batch, mean, std, recipe.run.channels_last)
        with autocast(device, bf16):
            views = view_mean(lambda v: backbone_features(model, v), x, data.tta_hflip, data.tta_translate)
            out.append(views.cpu())
    width = out[0].shape[1] if out else 0
    return torch.cat(out).numpy() if out else np.zeros((0, width), dtype=np.float32)


def features_key(recipe: Recipe, weights: Path | None, arrays: list[np.ndarray], mean, std, bf16: bool) -> str:
    """Everything the features depend on: model, weights bytes, image caches, normalization, TTA, precision."""
    net, data = recipe.model, recipe.data
    parts = {
        "v": 1,
        "model": net.name,
        "kwargs": net.kwargs,
        "small_stem": net.small_stem,
        "weights": sha256_file(weights) if weights else None,
        "hub": net.pretrained,
        "images": [Path(getattr(a, "filename", "") or "").name or str(a.shape) for a in arrays],
        "mean": [float(v) for v in mean.flatten()],
        "std": [float(v) for v in std.flatten()],
        "tta": [data.tta_hflip, data.tta_translate],
        "bf16": bf16,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cached_features(
    model: nn.Module,
    train: np.ndarray,
    test: np.ndarray,
    cache_dir: Path,
    recipe: Recipe,
    weights: Path | None,
    mean,
    std,
    device: torch.device,
    bf16: bool,
):
    """(train features, test features) float32 arrays, computed on the first call and read from the cache after."""
    key = features_key(recipe, weights, [train, test], mean, std, bf16)
    path = Path(cache_dir) / f"features-{recipe.model.name}-{key}.npz"
    with exclusive(path):  # DDP ranks or parallel folds wait for the first one's features
        if not path.exists():
            _write_features(model, train, test, path, recipe, mean, std, device, bf16)
        else:
            log.info("%s: backbone features from the cache", path)
    with np.load(path) as f:
        return f["train"], f["test"]


def _write_features(model, train, test, path: Path, recipe: Recipe, mean, std, device, bf16: bool) -> None:
    """Extract and save the features of every training and test image, atomically."""
    train_features = extract(model, train, mean, std, recipe, device, bf16, "features train")
    test_features = extract(model, test, mean, std, recipe, device, bf16, "features test")
    save_npz(path, train=train_features, test=test_features)
    log.info("%s: %d + %d backbone features of width %d cached", path, len(train), len(test), train_features.shape[1])
