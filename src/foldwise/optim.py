"""timm's optimizer factory (no weight decay on norms and biases) and its warmup + cosine scheduler, per step."""

from __future__ import annotations

from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from foldwise.config import OptimConfig


def create_optimizer_and_scheduler(model, cfg: OptimConfig, steps_per_epoch: int):
    """Optimizer + scheduler stepped once per optimizer update (`scheduler.step_update(step)`)."""
    optimizer = create_optimizer_v2(
        model, opt=cfg.name, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, filter_bias_and_bn=True
    )
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), max(total - 1, 0))
    scheduler = CosineLRScheduler(
        optimizer, t_initial=max(total - warmup, 1), lr_min=cfg.lr * cfg.min_lr_ratio, warmup_t=warmup,
        warmup_lr_init=cfg.lr * cfg.warmup_ratio, warmup_prefix=True, t_in_epochs=False,
    )  # fmt: skip
    return optimizer, scheduler
