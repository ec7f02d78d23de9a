"""What to do with the time left after fold 0 when the full retrain does not fit: a warm full retrain (from fold 0's
weights, on all labeled rows: `foldwise train --full --from-fold 0`) against spending the same training images on
more fold-0 epochs, scored on a held-back key.

    python bench/bench_warm_refit.py cifar10-50k -c speed --epochs 6 --workdir /tmp/warm
    python bench/bench_warm_refit.py cifar10-50k -c speed --epochs 6 --lr-scales 0.3,1.0 --workdir /tmp/warm

Unpacks ../shared/data/<name>.tar.gz (bench_defaults.py's way), writes folds, then runs, each a `foldwise train`
process:
  fold     fold 0 for --epochs (what predicts the test images when the plan leaves the full retrain out),
  warm     the warm full retrain from that fold (runs.warm_recipe: 30% of the epochs), at each --lr-scales (its
           learning rate as a share of the recipe's; 0.3 is foldwise's REFIT_LR_SCALE),
  longer   fold 0 for --epochs plus at least the warm run's training images in fold epochs (in another root),
and prints each one's training minutes, training images seen, held-out accuracy (OOF, with TTA) and key accuracy. A
finished run in --workdir is reused (foldwise skips it), so a rerun with more --lr-scales trains only what is new. Run
it alone: a second process on the 2 cores slows both.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from bench_defaults import unpack  # noqa: E402

from foldwise.config import load_recipe  # noqa: E402
from foldwise.training.runs import REFIT_LR_SCALE, warm_epochs  # noqa: E402


def foldwise(root: Path, *args: str) -> None:
    """Run one foldwise command under `root`."""
    subprocess.run([sys.executable, "-m", "foldwise", "--root", str(root), *args], check=True)


def key_accuracy(run_dir: Path, key: pd.Series) -> float:
    """Accuracy of a run's test.npz against the key (its classes from config.yaml)."""
    classes = np.array(yaml.safe_load((run_dir / "config.yaml").read_text())["classes"])
    test = np.load(run_dir / "test.npz")
    return float(np.mean(classes[test["logits"].argmax(1)] == key.loc[test["ids"]].to_numpy()))


def row(name: str, run_dir: Path, images: int, key: pd.Series) -> dict:
    """One line of the table: the run's epochs, lr, training minutes (its epochs' seconds in history.csv, scoring
    the held-out rows included, start-up and the final TTA predictions not), images seen, accuracies."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    seconds = pd.read_csv(run_dir / "history.csv")["seconds"].sum()
    oof = config.get("oof_score", {}).get("valid_acc")
    return {
        "run": name,
        "epochs": config["epochs"],
        "lr": config["recipe"]["optim"]["lr"],
        "minutes": round(seconds / 60, 1),
        "training images": images,
        "held-out (TTA)": "-" if oof is None else f"{oof:.4f}",
        "key": f"{key_accuracy(run_dir, key):.4f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="an archive name under ../shared/data with a key (cifar10-50k)")
    parser.add_argument("-c", "--recipe", default="speed")
    parser.add_argument("--epochs", type=int, default=6, help="fold 0's epochs")
    parser.add_argument("--lr-scales", default=str(REFIT_LR_SCALE), help="the warm run's lr shares, comma-separated")
    parser.add_argument("--workdir", type=Path, help="keep the workspace here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foldwise-warm-") as tmp:
        root = args.workdir or Path(tmp)
        comp = unpack(args.data, root)
        key = pd.read_csv(comp / "solution.csv", dtype=str).set_index("id")["label"]
        recipe, epochs = args.recipe, args.epochs
        if not (root / "folds" / f"{args.data}.csv").exists():
            foldwise(root, "folds", str(comp))
        train_rows = len(pd.read_csv(root / "folds" / f"{args.data}.csv"))
        fold_rows = round(train_rows * 4 / 5)
        base = ["train", str(comp), "-c", recipe, "--set", f"optim.epochs={epochs}"]
        rows = []
        foldwise(root, *base, "--fold", "0")
        rows.append(row("fold 0", root / "output" / args.data / recipe / "fold0", epochs * fold_rows, key))
        refit = warm_epochs(epochs)
        lr = load_recipe(recipe).optim.lr
        for scale in (float(s) for s in args.lr_scales.split(",")):
            kept = root / "warm" / f"lr{scale}"
            if not (kept / "test.npz").exists():  # the full/ folder holds one lr at a time: each kept aside
                lr_set = ["--set", f"optim.lr={lr * scale / REFIT_LR_SCALE:.6g}"]
                foldwise(root, *base, *lr_set, "--full", "--from-fold", "0", "--force")
                shutil.copytree(root / "output" / args.data / recipe / "full", kept, dirs_exist_ok=True)
            rows.append(row(f"fold 0 + warm full (lr x{scale})", kept, refit * train_rows, key))
        more = epochs + math.ceil(refit * train_rows / fold_rows)  # at least as many images as the warm run
        longer = root / "longer"
        (longer / "folds").mkdir(parents=True, exist_ok=True)
        for name in (f"{args.data}.csv", f"{args.data}.json"):
            shutil.copy(root / "folds" / name, longer / "folds" / name)
        cmd = ["train", str(comp), "-c", recipe, "--set", f"optim.epochs={more}", "--fold", "0"]
        foldwise(longer, *cmd)
        run_dir = longer / "output" / args.data / recipe / "fold0"
        rows.append(row(f"fold 0, {more} epochs", run_dir, more * fold_rows, key))
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        for r in rows:
            print("| " + " | ".join(str(v) for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
