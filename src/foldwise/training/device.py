"""Numeric formats: whether a run computes in bf16 autocast, and the autocast context itself."""

from __future__ import annotations

import contextlib

import torch


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """run.bf16 'auto' -> on only where bf16 is native: emulated bf16 on an AVX2-only CPU ran 7x slower here."""
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if not isinstance(setting, bool):
        raise ValueError(f"run.bf16 must be true, false or auto, got {setting!r}")
    return setting


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on the device when enabled, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
