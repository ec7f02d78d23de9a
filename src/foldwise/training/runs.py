"""Bookkeeping of training runs that needs no torch: run identity, seeds, finished/skip checks, fold selection.

Kept apart from train.py so that `foldwise train` on finished folds returns in a fraction of a second
instead of paying torch + timm's ~7 s import.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from foldwise import __version__
from foldwise.config import Recipe, recipe_from_dict
from foldwise.data.competition import Competition
from foldwise.data.content import fingerprint
from foldwise.data.folds import read_folds, repeat_columns, split_of
from foldwise.data.images import native_image_size
from foldwise.errors import FoldwiseError
from foldwise.fileio import sha256_file
from foldwise.workspace import Workspace

log = logging.getLogger(__name__)
FINAL_FILES = ("config.yaml", "history.csv", "test.npz", "model.pt")  # model.pt is written last


AUTO_SIZE_RANGE = (16, 64)  # data.image_size: 0 trains at the images' own size, kept inside this range


def resolve_recipe(recipe: Recipe, comp: Competition) -> Recipe:
    """The recipe with data.image_size: 0 ("the images' own size") replaced by the median shorter side of the
    competition's training images, clamped to AUTO_SIZE_RANGE (8 px digits -> 16, 28 px -> 28, 96 px -> 64)."""
    if recipe.data.image_size:
        return recipe
    side = native_image_size(comp.train_images)
    size = min(max(side, AUTO_SIZE_RANGE[0]), AUTO_SIZE_RANGE[1])
    log.info(
        "%s: data.image_size 0 -> %d px (the training images' median shorter side is %d px)", recipe.name, size, side
    )
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, image_size=size))


RUN_IDENTITY = ("recipe", "folds_sha256", "classes", "weights_sha256")  # a finished run with others is refused
TRAIN_PIXELS = "train_images_sha256"  # changed training pixels: the run is trained again
TEST_PIXELS = "test_images_sha256"  # changed test pixels: model.pt predicts them again
INIT_FROM = "init_from"  # a warm full retrain: the fold and model.pt digest it started from; changed: trained again
REFIT_SHARE = 0.3  # a warm full retrain trains this share of the fold's epochs (at least one) ...
REFIT_LR_SCALE = 0.3  # ... at this share of the recipe's learning rate, with the recipe's schedule shape


def run_seed(recipe: Recipe, fold: int | None) -> int:
    """Seed of one run: the recipe's seed combined with the fold (the full retrain counts as fold 99)."""
    return recipe.run.seed * 100 + (99 if fold is None else fold)


def warm_epochs(epochs: int) -> int:
    """Epochs of a warm full retrain after a fold of `epochs`: REFIT_SHARE of them, at least one."""
    return max(1, math.ceil(REFIT_SHARE * epochs))


def warm_recipe(recipe: Recipe) -> Recipe:
    """The recipe of a full retrain that starts from a fold model's weights instead of from scratch: REFIT_SHARE of
    the fold's epochs at REFIT_LR_SCALE of its learning rate: the held-out fifth learned from for about 0.4 of a
    fold's cost, when a time budget has room for that but not for a full retrain (budget.ladder; measured in
    README "Time budget")."""
    optim = dataclasses.replace(
        recipe.optim, epochs=warm_epochs(recipe.optim.epochs), lr=recipe.optim.lr * REFIT_LR_SCALE
    )
    return dataclasses.replace(recipe, optim=optim)


def init_model(ws: Workspace, comp: Competition, recipe: Recipe, fold: int) -> Path:
    """The model.pt of the fold a warm full retrain starts from: finished, with this recipe's network, these classes
    and the current folds file (else its weights would not load, or would carry another split)."""
    run_dir = ws.run_dir(comp.name, recipe.name, fold)
    path = run_dir / "model.pt"
    train_it = f"`foldwise train input/{comp.name} -c {recipe.name} --fold {fold}`"
    if not path.is_file() or not (run_dir / "config.yaml").is_file():
        raise FoldwiseError(f"{path}: missing; a full retrain from fold {fold}'s weights needs {train_it} first.")
    found = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    recorded = (comparable_recipe(found.get("recipe")) or {}).get("model")
    differs = [
        what
        for what, same_value in (
            ("network (model section)", recorded == comparable_recipe(recipe.to_dict())["model"]),
            ("classes", found.get("classes") == list(comp.classes)),
            ("folds file", found.get("folds_sha256") == sha256_file(ws.folds_csv(comp.name))),
        )
        if not same_value
    ]
    if differs:
        raise FoldwiseError(
            f"{run_dir}: trained with another {differs[0]}; a warm full retrain cannot start from it. "
            f"Train that fold again ({train_it} --force) or retrain in full without --from-fold."
        )
    return path


def run_meta(comp: Competition, recipe: Recipe, fold: int | None, ws: Workspace, init_from: Path | None = None) -> dict:
    """What identifies a run: recipe, data, fold, seed, folds file checksum, the weights a warm full retrain starts
    from; saved in config.yaml and model.pt."""
    meta = {
        "recipe": recipe.to_dict(),
        "competition": comp.name,
        "fold": fold,
        "seed": run_seed(recipe, fold),
        "folds_sha256": sha256_file(ws.folds_csv(comp.name)),
        "classes": list(comp.classes),
        TRAIN_PIXELS: fingerprint(comp.train_images, ws.cache_dir(comp.name), "train"),
        TEST_PIXELS: fingerprint(comp.test_images, ws.cache_dir(comp.name), "test"),
        "foldwise_version": __version__,
    }
    if init_from is not None:
        meta[INIT_FROM] = {"run": init_from.parent.name, "model_sha256": sha256_file(init_from)}
    weights = Path(recipe.model.pretrained_file).expanduser()
    if recipe.model.pretrained_file and not recipe.model.pretrained_file.startswith("package:") and weights.is_file():
        meta["weights_sha256"] = sha256_file(weights)  # a replaced weights file is another run, same path or not
    if recipe.model.pretrained:  # where `pretrained: true` finds weights here (a FOLDWISE_WEIGHTS file: its bytes)
        from foldwise.training.pretrained import find_weights  # timm loads only for pretrained recipes

        source = find_weights(recipe.model.name)
        meta.update(source.identity())
        if source.kind == "folder":
            meta["weights_sha256"] = sha256_file(source.file)
    return meta


@dataclass(frozen=True)
class RunPlan:
    """One run to train or skip: the data, the resolved recipe, the fold (None: the full retrain), where it writes
    and what identifies it (`meta`, saved in config.yaml and model.pt)."""

    comp: Competition
    recipe: Recipe
    fold: int | None
    run_dir: Path
    meta: dict
    folds_csv: Path
    cache_dir: Path
    init_from: Path | None = None  # a warm full retrain: the fold model.pt whose weights it starts from

    @property
    def name(self) -> str:
        """'cpu-cnn fold 0', 'cpu-cnn full', 'cpu-cnn full from fold0': how logs name the run."""
        warm = f" from {self.init_from.parent.name}" if self.init_from is not None else ""
        return f"{self.recipe.name} {'full' if self.fold is None else f'fold {self.fold}'}{warm}"

    def status(self, force: bool = False) -> str:
        """'train', 'predict' or 'done' (see run_status); --force always trains."""
        return "train" if force else run_status(self.run_dir, self.fold, self.meta)


def plan_run(
    comp: Competition, recipe: Recipe, fold: int | None, ws: Workspace, warm_from: int | None = None
) -> RunPlan:
    """The plan of one run: image size resolved, identity computed; nothing is read but the folds file (and, for a
    full retrain `warm_from` a fold, that fold's model.pt, whose weights it starts from with warm_recipe's
    schedule)."""
    init_from = None
    if warm_from is not None and fold is None:
        init_from = init_model(ws, comp, recipe, warm_from)
        recipe = warm_recipe(recipe)
    recipe = resolve_recipe(recipe, comp)
    run_dir = ws.run_dir(comp.name, recipe.name, fold)
    meta = run_meta(comp, recipe, fold, ws, init_from)
    return RunPlan(comp, recipe, fold, run_dir, meta, ws.folds_csv(comp.name), ws.cache_dir(comp.name), init_from)


def is_finished(run_dir: Path, fold: int | None) -> bool:
    """All final artifacts are present (each is written atomically, model.pt last)."""
    needed = FINAL_FILES + (() if fold is None else ("oof.npz",))
    return all((run_dir / name).exists() for name in needed)


LOGGING_ONLY = (("run", "tracker"),)  # recipe keys that change what is logged, never what is trained


def comparable_recipe(recipe: dict | None) -> dict | None:
    """A recorded recipe with today's defaults for keys added since it was written and without logging-only keys,
    so that neither a newer foldwise nor another tracker makes a finished run look different."""
    if recipe is None:
        return None
    try:
        full = recipe_from_dict({k: v for k, v in recipe.items() if k != "name"}, name=recipe.get("name", "")).to_dict()
    except FoldwiseError:  # a key this foldwise no longer has: another run
        return recipe
    for section, key in LOGGING_ONLY:
        full[section].pop(key, None)
    return full


def same(key: str, old, new) -> bool:
    """Whether a recorded identity value equals this run's."""
    if key == "recipe":
        return comparable_recipe(old) == comparable_recipe(new)
    return old == new


def run_status(run_dir: Path, fold: int | None, meta: dict) -> str:
    """'done' when this exact run finished; 'train' when it did not, or its training images or the fold model a warm
    full retrain started from changed since, or a full retrain is wanted warm where it was cold (or the other way,
    as a rerun's time budget may plan); 'predict' when only the test images changed (model.pt predicts them again).
    A finished run of another recipe, folds, classes or weights file is an error, never replaced without --force."""
    if not is_finished(run_dir, fold):
        return "train"
    old = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    if bool(old.get(INIT_FROM)) != bool(meta.get(INIT_FROM)):
        kind = "warm, from a fold's weights" if old.get(INIT_FROM) else "from scratch"
        log.warning("%s: trained %s; this plan wants the other kind: training it again", run_dir, kind)
        return "train"
    for key in RUN_IDENTITY:
        if not same(key, old.get(key), meta.get(key)):
            raise FoldwiseError(
                f"{run_dir}: already trained with a different {key.replace('_sha256', ' file')}. "
                "Pass --force to retrain it (its artifacts will be replaced), or give the recipe a new name."
            )
    if old.get(TRAIN_PIXELS) != meta[TRAIN_PIXELS]:
        log.warning(
            "%s: the training images changed since it was trained (their content fingerprint differs): "
            "training it again",
            run_dir,
        )
        return "train"
    if old.get(INIT_FROM) != meta.get(INIT_FROM):
        log.warning("%s: the fold model it started from changed since it was trained: training it again", run_dir)
        return "train"
    if old.get(TEST_PIXELS) != meta[TEST_PIXELS]:
        log.warning(
            "%s: the test images changed since it was trained: predicting them again with its model.pt", run_dir
        )
        return "predict"
    log.info("%s: finished earlier, skipping (use --force to retrain)", run_dir)
    return "done"


def fold_numbers(ws: Workspace, comp: Competition, fold: str) -> list[int]:
    """'all' -> every fold in the folds file (with repeats, numbered r * k + fold); 'K' or 'K,L' -> those folds
    (which must exist)."""
    path = ws.folds_csv(comp.name)
    df = read_folds(path, comp)
    columns = repeat_columns(df)
    present = (
        sorted(int(f) for f in set(df["fold"]))
        if len(columns) == 1
        else list(range(df["fold"].nunique() * len(columns)))
    )
    if fold == "all":
        return present
    try:
        wanted = [int(f) for f in fold.split(",")]
    except ValueError as e:
        raise FoldwiseError(f"--fold {fold!r}: give a fold number, a comma-separated list, or 'all'.") from e
    missing = [f for f in wanted if f not in present]
    if missing:
        raise FoldwiseError(f"{path}: has no fold {missing} (its folds are {present}).")
    return wanted


def fold_layout(ws: Workspace, comp: Competition) -> tuple[int, int]:
    """(k, repeats) of the competition's folds file."""
    df = read_folds(ws.folds_csv(comp.name), comp)
    return int(df["fold"].nunique()), len(repeat_columns(df))


def repeat_of(plan: RunPlan) -> int:
    """Which repeat of repeated k-fold the plan's fold belongs to (0 without repeats and for the full retrain)."""
    return 0 if plan.fold is None else split_of(read_folds(plan.folds_csv, plan.comp), plan.fold)[2]


def fold_rows(plan: RunPlan) -> tuple[list[int], list[int]]:
    """(training rows, held-out rows) of the plan's fold in competition row order; the full retrain holds none out.
    With repeated k-fold, fold r * k + f holds out repeat r's fold f."""
    comp, fold = plan.comp, plan.fold
    df = read_folds(plan.folds_csv, comp)
    column, fold = split_of(df, fold)[:2] if fold is not None else ("fold", None)
    fold_of = dict(zip(df["id"], df[column]))
    valid = [row for row, id_ in enumerate(comp.train_ids) if fold is not None and fold_of[id_] == fold]
    train = [row for row, id_ in enumerate(comp.train_ids) if fold is None or fold_of[id_] != fold]
    if fold is not None and not valid:
        raise FoldwiseError(f"{plan.folds_csv}: fold {fold} has no images; choose an existing fold.")
    return train, valid


def full_epochs(plan: RunPlan) -> tuple[int, str]:
    """Epochs for the full retrain: the median of the finished folds' epochs (early stopping), else the recipe's.
    Folds count when they recorded the recipe this run records (its identity, with run.bf16 / run.channels_last
    'auto' as written, not as resolved for this machine)."""
    recipe = plan.recipe
    if plan.init_from is not None:
        return recipe.optim.epochs, f"warm start from {plan.init_from.parent.name}'s weights"
    folds = [yaml.safe_load(p.read_text()) for p in sorted(plan.run_dir.parent.glob("fold*/config.yaml"))]
    counts = [m["epochs"] for m in folds if same("recipe", m.get("recipe"), plan.meta["recipe"]) and "epochs" in m]
    if not counts or recipe.optim.patience <= 0:
        return recipe.optim.epochs, "recipe"
    return int(statistics.median(counts)), f"median of {len(counts)} folds' early-stopped epochs {counts}"
