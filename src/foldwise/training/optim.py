"""timm's optimizer factory (no weight decay on norms and biases) and its warmup + cosine scheduler, per step."""

from __future__ import annotations

from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler

from foldwise.config import OptimConfig
from foldwise.errors import FoldwiseError

# Warmup never takes more than this share of the run: `--set optim.epochs=1` with a 1-epoch warmup trained at the
# warmup learning rate only (0.10 OOF accuracy on digits), never reaching the recipe's lr.
WARMUP_MAX_SHARE = 0.2


def create_optimizer_and_scheduler(model, cfg: OptimConfig, steps_per_epoch: int, epochs: int | None = None):
    """Optimizer + scheduler stepped once per optimizer update (`scheduler.step_update(step)`).

    `epochs` overrides cfg.epochs (the full retrain uses the epoch count cross-validation chose).
    """
    optimizer = create_optimizer_v2(
        model, opt=cfg.name, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, filter_bias_and_bn=True
    )
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
