"""Bookkeeping of training runs that needs no torch: run identity, seeds, finished/skip checks, fold selection.

Kept apart from train.py so that `foldwise train` on finished folds returns in a fraction of a second
instead of paying torch + timm's ~7 s import.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from foldwise import __version__
from foldwise.competition import Competition
from foldwise.config import Recipe
from foldwise.errors import FoldwiseError
from foldwise.fileio import sha256_file
from foldwise.folds import read_folds
from foldwise.workspace import Workspace

log = logging.getLogger(__name__)
FINAL_FILES = ("config.yaml", "history.csv", "test.npz", "model.pt")  # model.pt is written last


def run_seed(recipe: Recipe, fold: int | None) -> int:
    """Seed of one run: the recipe's seed combined with the fold (the full retrain counts as fold 99)."""
    return recipe.run.seed * 100 + (99 if fold is None else fold)


def run_meta(comp: Competition, recipe: Recipe, fold: int | None, ws: Workspace) -> dict:
    """What identifies a run: recipe, data, fold, seed, folds file checksum; saved in config.yaml and model.pt."""
    return {
        "recipe": recipe.to_dict(), "competition": comp.name, "fold": fold, "seed": run_seed(recipe, fold),
        "folds_sha256": sha256_file(ws.folds_csv(comp.name)), "classes": list(comp.classes),
        "foldwise_version": __version__,
    }  # fmt: skip


def is_finished(run_dir: Path, fold: int | None) -> bool:
    """All final artifacts are present (each is written atomically, model.pt last)."""
    needed = FINAL_FILES + (() if fold is None else ("oof.npz",))
    return all((run_dir / name).exists() for name in needed)


def skip_finished(run_dir: Path, fold: int | None, meta: dict) -> bool:
    """True when this exact run already finished; an earlier run of another recipe or folds is an error."""
    if not is_finished(run_dir, fold):
        return False
    old = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    for key in ("recipe", "folds_sha256", "classes"):
        if old.get(key) != meta.get(key):
            raise FoldwiseError(
                f"{run_dir}: already trained with a different {key.replace('_sha256', ' file')}. "
                "Pass --force to retrain it (its artifacts will be replaced), or give the recipe a new name."
            )
    log.info("%s: finished earlier, skipping (use --force to retrain)", run_dir)
    return True


def fold_numbers(ws: Workspace, comp: Competition, fold: str) -> list[int]:
    """'all' -> every fold in the folds file; 'K' or 'K,L' -> those folds (which must exist)."""
    path = ws.folds_csv(comp.name)
    present = sorted(int(f) for f in set(read_folds(path, comp)["fold"]))
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
