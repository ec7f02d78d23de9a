"""Fashion-MNIST fold-0 holdout accuracy and time per epoch for a recipe (issue goal: >= 93.5% within 20 minutes
of training on the 2-core CPU).

    python bench/bench_fashion.py [--recipe speed] [--set optim.epochs=12 ...] [--workdir DIR]

Builds `foldwise demo fashion-mnist` (Debian's dataset-fashion-mnist IDX files) in the work directory if missing,
writes 5 seeded folds, trains fold 0 (48k train / 12k holdout) with the recipe `submit.sh` uses by default on small
images (the packaged speed recipe), and prints history.csv: epoch, seconds (training + scoring the holdout without TTA),
cumulative minutes, holdout accuracy; then the final holdout accuracy with the recipe's TTA (the OOF logits).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from foldwise.config import load_recipe
from foldwise.data.demo import build_fashion_mnist
from foldwise.data.folds import make_folds, write_folds
from foldwise.data.formats import load_competition
from foldwise.training.runs import resolve_recipe
from foldwise.training.train import train_run
from foldwise.workspace import Workspace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="speed", help="a recipe file or packaged name")
    p.add_argument("--set", action="append", default=[], help="recipe override section.key=value")
    p.add_argument("--workdir", type=Path, help="keeps the demo and its cache between runs (default: a temp dir)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        comp_dir = root / "input" / "fashion-mnist"
        if not comp_dir.exists():
            build_fashion_mnist(comp_dir)
        comp, ws = load_competition(comp_dir), Workspace(root)
        write_folds(make_folds(comp, k=5, seed=42), ws.folds_csv(comp.name), k=5, seed=42, force=True)
        recipe = resolve_recipe(load_recipe(args.recipe, args.set), comp)
        run_dir = train_run(comp, recipe, 0, ws, force=True)
        history = pd.read_csv(run_dir / "history.csv")
        oof = yaml.safe_load((run_dir / "config.yaml").read_text())["oof_score"]["valid_acc"]
        history["minutes"] = history["seconds"].cumsum() / 60
        print(f"recipe {recipe.name} ({recipe.model.name}, {recipe.data.image_size} px) overrides {args.set}")
        print(history[["epoch", "seconds", "minutes", "valid_acc"]].to_string(index=False))
        best_in_budget = history[history["minutes"] <= 20]["valid_acc"]
        print(f"final holdout accuracy {history['valid_acc'].iloc[-1]:.4f} without TTA, {oof:.4f} with the recipe's "
              f"TTA (oof.npz); {history['minutes'].iloc[-1]:.1f} min in all; last epoch within 20 min: "
              f"{best_in_budget.iloc[-1] if len(best_in_budget) else float('nan'):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
