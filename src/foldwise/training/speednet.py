"""`foldwise_speednet`: a CIFAR speed-run style network (after airbench94), registered in timm for the speed recipe.

A frozen 2x2 patch-whitening stem initialized from the training images' patch covariance, three conv-pool blocks
with BatchNorm + GELU, global max-pool and a linear head. BatchNorm runs in fp32 under bf16 autocast (autocast
keeps batch_norm in fp32). Small images only (16-64 px).
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import nn


def conv_group(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (airbench's ConvGroup)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU(),
    )  # fmt: skip


class SpeedNet(nn.Module):
    """Whitened patch stem + 3 conv groups; `init_whitening(images)` must be called once before training."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, widths=(64, 256, 256), drop_rate: float = 0.0):
        super().__init__()
        patch = in_chans * 4  # 2x2 patches
        self.whiten = nn.Conv2d(in_chans, 2 * patch, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # fixed by init_whitening; the bias still learns
        self.act = nn.GELU()
        groups, c_in = [], 2 * patch
        for width in widths:
            groups.append(conv_group(c_in, width))
            c_in = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.num_classes, self.num_features = num_classes, c_in
        self.head = nn.Linear(c_in, num_classes, bias=False) if num_classes else nn.Identity()

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to the patch-whitening transform of `images` (normalized NCHW), +/- each eigen-direction."""
        c = images.shape[1]
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H-1, W-1, 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * 4, c, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def get_classifier(self) -> nn.Module:
        """timm convention: the final classification layer."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """timm convention: replace the head for a new number of classes."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes, bias=False) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector per image."""
        return self.pool(self.groups(self.act(self.whiten(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.head(self.drop(self.forward_features(x)))


@register_model
def foldwise_speednet(pretrained: bool = False, **kwargs) -> SpeedNet:
    """The speed recipe's model (widths 64/256/256 like airbench94 unless `widths` is given)."""
    if pretrained:
        raise ValueError("foldwise_speednet has no pretrained weights; set model.pretrained: false.")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    return SpeedNet(**kwargs)
