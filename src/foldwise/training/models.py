"""Models by timm name (foldwise's own small-image nets are registered in timm by foldwise.training.nets), with
pretrained weights, a small-image stem and a frozen backbone as the recipe asks."""

from __future__ import annotations

import timm
from timm.data import resolve_model_data_config
from timm.layers import freeze_batch_norm_2d
from torch import nn

import foldwise.training.nets  # noqa: F401  (registers foldwise_cnn, foldwise_resnet_mini, foldwise_speednet)
from foldwise.config import ModelConfig
from foldwise.errors import FoldwiseError
from foldwise.training.pretrained import create_pretrained
from foldwise.training.weights import load_weights_file


def create_model(cfg: ModelConfig, num_classes: int, load_weights: bool = True) -> nn.Module:
    """timm.create_model by name with the competition's class count; pretrained weights and freezing per `cfg`.
    `load_weights=False` builds the same network without fetching any weights (model.pt's state dict follows)."""
    if cfg.pretrained and cfg.pretrained_file:
        raise FoldwiseError(
            f"model.pretrained and model.pretrained_file={cfg.pretrained_file!r} are both set: "
            "keep one (pretrained downloads timm's hub weights, pretrained_file loads a local file)."
        )
    if cfg.freeze_backbone and not (cfg.pretrained or cfg.pretrained_file):
        raise FoldwiseError(
            "model.freeze_backbone needs pretrained weights (model.pretrained or model.pretrained_file): "
            "a frozen random backbone would train the classifier on random features."
        )
    if cfg.pretrained and load_weights:  # a local folder, the hub cache, a weights package, else a download
        model, model.weights_source = create_pretrained(cfg.name, num_classes, drop_rate=cfg.drop_rate, **cfg.kwargs)
    else:
        model = timm.create_model(
            cfg.name, pretrained=False, num_classes=num_classes, drop_rate=cfg.drop_rate, **cfg.kwargs
        )
    if cfg.pretrained_file and load_weights:
        load_weights_file(model, cfg.pretrained_file, cfg.name)
    if cfg.small_stem:
        small_image_stem(model, cfg.name)
    if cfg.freeze_backbone:
        model = freeze_backbone(model)
    elif cfg.freeze_bn:
        model = freeze_batch_norm_2d(model)
    return model


def small_image_stem(model: nn.Module, name: str) -> None:
    """A timm ResNet's 7x7 stride-2 stem conv becomes a fresh 3x3 stride-1 conv and its max-pool is dropped, so a
    32 px image reaches the first stage at 32x32 instead of 8x8 (the CIFAR ResNet stem; ~16x the compute)."""
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise FoldwiseError(
            f"model.small_stem: {name} has no single conv1 + maxpool stem (timm ResNets such as resnet18/34/50 have); "
            "set model.small_stem: false for this model."
        )
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None)
    model.maxpool = nn.Identity()


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Train only the classifier: every other parameter stops taking gradients, and timm's freeze_batch_norm_2d turns
    every BatchNorm into a FrozenBatchNorm2d / FrozenBatchNormAct2d: the pretrained statistics and affine in train
    and eval mode alike, held as buffers (no num_batches_tracked key).

    Frozen modules rather than BatchNorm kept in eval mode by a train() override: they hold whatever calls train()
    (the Trainer, DDP, torch.compile, EMA copies), and model.pt's state-dict keys record the choice.
    """
    head = {id(p) for p in model.get_classifier().parameters()}
    if not head:
        raise FoldwiseError("model.freeze_backbone: the model has no classifier parameters to train (num_classes 0?).")
    for param in model.parameters():
        param.requires_grad_(id(param) in head)
    return freeze_batch_norm_2d(model)


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model expects on 0-1 RGB input (timm's pretrained config, ImageNet by default)."""
    data_cfg = resolve_model_data_config(model)
    return tuple(data_cfg["mean"]), tuple(data_cfg["std"])
