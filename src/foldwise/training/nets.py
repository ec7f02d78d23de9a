"""Small-image networks foldwise registers in timm's registry, so recipes name them like any timm model.

- `foldwise_cnn`: an airbench-style CNN (conv, max-pool, conv blocks), the fast CPU recipe's model.
- `foldwise_resnet_mini`: timm's ResNet with one BasicBlock per stage and narrow widths.
- `foldwise_speednet`: a CIFAR speed-run style network (after airbench94): a frozen 2x2 patch-whitening stem
  initialized from the training images' patch covariance, three conv-pool groups with BatchNorm + GELU, global
  max-pool and a linear head. BatchNorm runs in fp32 under bf16 autocast. Small images only (16-64 px).
"""

from __future__ import annotations

import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import nn


class ClassifierHead:
    """timm's classifier conventions for a net whose final layer is `self.head` over `self.num_features` inputs."""

    head_bias = True

    def get_classifier(self) -> nn.Module:
        """timm convention: the final classification layer."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """timm convention: replace the head for a new number of classes."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes, bias=self.head_bias) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.head(self.drop(self.forward_features(x)))


def timm_kwargs_dropped(kwargs: dict) -> dict:
    """The keyword arguments timm's factory adds for hub models, which these nets do not take."""
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    return kwargs


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> GELU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


class SmallImageCNN(ClassifierHead, nn.Module):
    """Airbench-style CNN for 16-64 px images: stem, then (conv, max-pool, conv) blocks, global max-pool, linear.

    Evidence (configs/cpu-cnn.yaml, 2-core AVX2 CPU, fp32 + channels_last): ~1,000 img/s at 16 px and ~300 img/s at
    32 px; 99.3% OOF on the digits demo.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, widths=(32, 64, 128), drop_rate: float = 0.0):
        super().__init__()
        self.num_features = widths[-1]
        layers = [conv_bn(in_chans, widths[0])]
        c_in = widths[0]
        for width in widths:
            layers += [conv_bn(c_in, width), nn.MaxPool2d(2), conv_bn(width, width)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector per image."""
        return self.pool(self.features(x)).flatten(1)


@register_model
def foldwise_cnn(pretrained: bool = False, **kwargs) -> SmallImageCNN:
    """Narrow small-image CNN (widths 32/64/128), the fast CPU recipe's model. No pretrained weights exist."""
    if pretrained:
        raise ValueError("foldwise_cnn has no pretrained weights; set model.pretrained: false.")
    return SmallImageCNN(**timm_kwargs_dropped(kwargs))


@register_model
def foldwise_resnet_mini(pretrained: bool = False, **kwargs) -> ResNet:
    """timm's ResNet with one BasicBlock per stage and widths 32/64/128/256 (1.2M parameters) for small CPU runs."""
    if pretrained:
        raise ValueError("foldwise_resnet_mini has no pretrained weights; set model.pretrained: false.")
    return ResNet(BasicBlock, (1, 1, 1, 1), channels=(32, 64, 128, 256), **timm_kwargs_dropped(kwargs))


def conv_group(c_in: int, c_out: int, bn_weights: bool, bn_momentum: float) -> nn.Sequential:
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (airbench's ConvGroup)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        batch_norm(c_out, bn_weights, bn_momentum),
        nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        batch_norm(c_out, bn_weights, bn_momentum),
        nn.GELU(),
    )


def batch_norm(channels: int, weights: bool, momentum: float) -> nn.BatchNorm2d:
    """BatchNorm whose scale stays 1 unless `weights` (airbench: only the bias learns; the convolution before it
    sets the scale), with torch's `momentum` for the running statistics."""
    norm = nn.BatchNorm2d(channels, momentum=momentum)
    norm.weight.requires_grad_(weights)
    return norm


class SpeedNet(ClassifierHead, nn.Module):
    """Whitened patch stem + 3 conv groups; `init_whitening(images)` must be called once before training."""

    head_bias = False  # as airbench's head

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths=(64, 256, 256),
        drop_rate: float = 0.0,
        bn_weights: bool = True,
        bn_momentum: float = 0.1,
        dirac: bool = False,
        logit_scale: float = 1.0,
    ):
        super().__init__()
        patch = in_chans * 4  # 2x2 patches
        self.whiten = nn.Conv2d(in_chans, 2 * patch, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # fixed by init_whitening; the bias still learns
        self.act = nn.GELU()
        groups, c_in = [], 2 * patch
        for width in widths:
            groups.append(conv_group(c_in, width, bn_weights, bn_momentum))
            c_in = width
        self.groups = nn.Sequential(*groups)
        if dirac:  # identity init of each conv's first in-channel filters: an implicit residual path at the start
            for conv in self.groups.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.num_features = c_in
        self.logit_scale = logit_scale  # airbench multiplies its bias-free head's logits by 1/9
        self.reset_classifier(num_classes)

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

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector per image."""
        return self.pool(self.groups(self.act(self.whiten(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (scaled by `logit_scale`)."""
        logits = super().forward(x)
        return logits * self.logit_scale if self.logit_scale != 1.0 else logits


@register_model
def foldwise_speednet(pretrained: bool = False, **kwargs) -> SpeedNet:
    """The speed recipe's model (widths 64/256/256 like airbench94 unless `widths` is given)."""
    if pretrained:
        raise ValueError("foldwise_speednet has no pretrained weights; set model.pretrained: false.")
    return SpeedNet(**timm_kwargs_dropped(kwargs))
