"""timm's optimizer factory (no weight decay on norms and biases) and its warmup + cosine/linear scheduler, stepped
per update; for fine-tuning, parameter groups whose learning rate is scaled (timm's `lr_scale`, which its
schedulers apply): a lower rate for the pretrained backbone than for the new classifier (`optim.backbone_lr_scale`),
timm's layer-wise decay (`optim.layer_decay`), and a first phase where only the classifier learns
(`optim.head_epochs`: the backbone's scale is 0 until then); for from-scratch nets, BatchNorm parameters that learn
faster than the rest (`optim.norm_lr_scale`, airbench's bias scaler)."""

from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler
from torch.nn.modules.batchnorm import _BatchNorm

from foldwise.config import OptimConfig
from foldwise.errors import FoldwiseError

# Warmup never takes more than this share of the run: `--set optim.epochs=1` with a 1-epoch warmup trained at the
# warmup learning rate only (0.10 OOF accuracy on digits), never reaching the recipe's lr.
WARMUP_MAX_SHARE = 0.2
BACKBONE = "foldwise_backbone_scale"  # param-group key: the backbone group's own lr scale (after the head phase)


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """Weight-decay groups (none on 1-d parameters: norms, biases) split into classifier and backbone; backbone
    groups carry lr_scale = cfg.backbone_lr_scale (0 while the head phase lasts)."""
    head = {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    groups = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        part = "head" if id(param) in head or not head else "backbone"
        decay = param.ndim > 1
        groups.setdefault((part, decay), []).append(param)
    out = []
    for (part, decay), params in groups.items():
        group = {"params": params, "weight_decay": cfg.weight_decay if decay else 0.0}
        if part == "backbone":
            group[BACKBONE] = cfg.backbone_lr_scale
            group["lr_scale"] = 0.0 if cfg.head_epochs else cfg.backbone_lr_scale
        out.append(group)
    return out


def norm_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """Convolution and linear weights (decayed), BatchNorm parameters at lr x cfg.norm_lr_scale with the weight decay
    divided by it (so the decay per step stays that of the weights: airbench's bias scaler), other 1-d parameters
    undecayed."""
    norms = {id(p) for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters()}
    weights, norm, other = [], [], []
    for param in model.parameters():
        if param.requires_grad:
            (norm if id(param) in norms else weights if param.ndim > 1 else other).append(param)
    groups = [
        {"params": weights, "weight_decay": cfg.weight_decay},
        {"params": norm, "weight_decay": cfg.weight_decay / cfg.norm_lr_scale, "lr_scale": cfg.norm_lr_scale},
        {"params": other, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def set_head_phase(optimizer: torch.optim.Optimizer, head_only: bool) -> None:
    """Backbone groups learn at 0 (only the classifier) while `head_only`, then at their own scale; takes effect
    at the scheduler's next update."""
    for group in optimizer.param_groups:
        if BACKBONE in group:
            group["lr_scale"] = 0.0 if head_only else group[BACKBONE]


def create_optimizer_and_scheduler(model, cfg: OptimConfig, steps_per_epoch: int, epochs: int | None = None):
    """Optimizer + scheduler stepped once per optimizer update (`scheduler.step_update(step)`).

    `epochs` overrides cfg.epochs (the full retrain uses the epoch count cross-validation chose).
    """
    common_opt = dict(opt=cfg.name, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.norm_lr_scale != 1.0:
        optimizer = create_optimizer_v2(norm_groups(model, cfg), **common_opt)
    elif cfg.layer_decay:
        optimizer = create_optimizer_v2(model, layer_decay=cfg.layer_decay, filter_bias_and_bn=True, **common_opt)
    elif cfg.backbone_lr_scale != 1.0 or cfg.head_epochs:
        optimizer = create_optimizer_v2(param_groups(model, cfg), **common_opt)
    else:
        optimizer = create_optimizer_v2(model, filter_bias_and_bn=True, **common_opt)
    total = (epochs or cfg.epochs) * steps_per_epoch
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), int(WARMUP_MAX_SHARE * total))
    common = dict(
        optimizer=optimizer,
        t_initial=max(total - warmup, 1),
        lr_min=cfg.lr * cfg.min_lr_ratio,
        warmup_t=warmup,
        warmup_lr_init=cfg.lr * cfg.warmup_ratio,
        warmup_prefix=True,
        t_in_epochs=False,
    )
    if cfg.schedule == "cosine":
        return optimizer, CosineLRScheduler(**common)
    if cfg.schedule == "linear":
        return optimizer, PolyLRScheduler(power=1.0, **common)
    raise FoldwiseError(f"optim.schedule={cfg.schedule!r}: choose cosine or linear.")
