"""Fashion-MNIST fold-0 holdout accuracy and time per epoch for a recipe (issue goal: >= 93.5% within 20 minutes
of training on the 2-core CPU).

    python bench/bench_fashion.py [--recipe configs/cpu-cnn.yaml] [--set data.image_size=28 ...] [--workdir DIR]

Builds `foldwise demo fashion-mnist` (Debian's dataset-fashion-mnist IDX files) in the work directory if missing,
writes 5 seeded folds, trains fold 0 (48k train / 12k holdout) and prints history.csv: epoch, seconds, cumulative
minutes, holdout accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from foldwise.competition import load_competition
from foldwise.config import load_recipe
from foldwise.demo import build_fashion_mnist
from foldwise.folds import make_folds, write_folds
from foldwise.train import train_run
from foldwise.workspace import Workspace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "configs" / "cpu-cnn.yaml"))
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
        recipe = load_recipe(args.recipe, args.set)
        run_dir = train_run(comp, recipe, 0, ws, force=True)
        history = pd.read_csv(run_dir / "history.csv")
        history["minutes"] = history["seconds"].cumsum() / 60
        print(f"recipe {recipe.name} ({recipe.model.name}, {recipe.data.image_size} px) overrides {args.set}")
        print(history[["epoch", "seconds", "minutes", "valid_acc"]].to_string(index=False))
        best_in_budget = history[history["minutes"] <= 20]["valid_acc"]
        print(f"final holdout accuracy {history['valid_acc'].iloc[-1]:.4f}; "
              f"last within 20 min {best_in_budget.iloc[-1] if len(best_in_budget) else float('nan'):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
