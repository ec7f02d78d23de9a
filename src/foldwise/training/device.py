"""Where and in what numeric format a run computes: the device, bf16 autocast, and the autocast context."""

from __future__ import annotations

import contextlib
import os

import torch

from foldwise.errors import FoldwiseError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        if os.environ.get("FOLDWISE_REQUIRE_CUDA") and not torch.cuda.is_available():  # set for per-GPU children
            raise FoldwiseError(
                "this fold was started on a GPU (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}) but torch sees none; check the driver."
            )
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FoldwiseError(f"run.device={name!r} but no CUDA GPU is visible; use run.device=auto or cpu.")
    return torch.device(name)


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """run.bf16 'auto' -> on only where bf16 is native: emulated bf16 on an AVX2-only CPU ran 7x slower here. On
    CUDA that is compute capability 8.0 (Ampere) and newer, asked of the run's own device: a T4 (7.5) or V100 (7.0)
    only emulates bf16, which torch.cuda.is_bf16_supported() counts as support."""
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.get_device_capability(device)[0] >= 8
        return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if not isinstance(setting, bool):
        raise ValueError(f"run.bf16 must be true, false or auto, got {setting!r}")
    return setting


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on the device when enabled, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def set_deterministic(on: bool) -> None:
    """run.deterministic: deterministic algorithms where torch has them (cuDNN without autotuning, cuBLAS with a
    fixed workspace); ops torch knows no deterministic kernel for (on CUDA: AdaptiveMaxPool2d's backward, which the
    small foldwise nets use) warn instead of failing, and are then the only source of run-to-run differences."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False
