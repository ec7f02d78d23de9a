"""Accuracy against time budget: `TIME=<b> bash submit.sh input/fashion-mnist` with the default recipes, for each
budget, in a fresh workspace with an empty probe cache (so every run pays for its own probes), alone on the machine.

    python bench/bench_budget.py [--budgets 10m,30m,60m] [--demo fashion-mnist] [--workdir DIR]

Prints, per budget: wall seconds of the whole `submit.sh` (start to exit, the number the budget promises), wall /
budget (must stay <= 1.05), the plan it chose (recipes, folds, epochs, full retrain), the epochs each run actually
trained after re-planning, and the accuracy of submission.csv on the held-back key (solution.csv). Then the probe's
measured formats per recipe, and the one `auto` chose.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from foldwise.budget import parse_duration  # noqa: E402
from foldwise.data.demo import DEMOS  # noqa: E402


def one_budget(demo_dir: Path, work: Path, budget: str) -> dict:
    """A fresh root with the demo copied in; `bash submit.sh` under TIME=budget; what it chose and scored."""
    root = work / f"budget-{budget}"
    shutil.rmtree(root, ignore_errors=True)
    comp = root / "input" / demo_dir.name
    shutil.copytree(demo_dir, comp)
    env = {**os.environ, "TIME": budget, "ROOT": str(root), "FOLDWISE_CACHE": str(root / "probe-cache")}
    log = root / "submit.log"
    start = time.time()
    with open(log, "w") as out:
        rc = subprocess.run(["bash", str(REPO / "submit.sh"), str(comp)], env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.time() - start
    if rc.returncode:
        sys.exit(f"submit.sh failed for TIME={budget}; see {log}")
    out_dir = root / "output" / demo_dir.name
    plan = json.loads((out_dir / "plan.json").read_text())
    key = pd.read_csv(comp / "solution.csv", dtype=str).set_index("id").iloc[:, 0]
    submission = pd.read_csv(out_dir / "submission.csv", dtype=str).set_index("id").iloc[:, 0]
    trained = {}
    for config in sorted(out_dir.glob("*/*/config.yaml")):
        meta = yaml.safe_load(config.read_text())
        history = pd.read_csv(config.parent / "history.csv")
        trained[f"{config.parent.parent.name}/{config.parent.name}"] = {
            "epochs": len(history),
            "planned": meta["recipe"]["optim"]["epochs"],
            "bf16": meta.get("bf16"),
            "channels_last": meta.get("channels_last"),
        }
    return {
        "budget_s": parse_duration(budget),
        "wall_s": round(wall, 1),
        "wall_over_budget": round(wall / parse_duration(budget), 3),
        "plan": {k: plan[k] for k in ("recipes", "epochs", "folds", "full", "reasons")},
        "estimated_s": round(sum(plan["seconds"].values()), 1),
        "trained": trained,
        "key_accuracy": float((submission.reindex(key.index) == key).mean()),
        "probes": json.loads((root / "probe-cache" / "probes.json").read_text()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="10m,30m,60m")
    parser.add_argument("--demo", default="fashion-mnist", choices=sorted(DEMOS))
    parser.add_argument("--workdir", type=Path, help="keeps every run's workspace (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foldwise-budget-") as tmp:
        work = args.workdir or Path(tmp)
        demo_dir = DEMOS[args.demo](work / "demo" / args.demo) if not (work / "demo" / args.demo).exists() else None
        demo_dir = demo_dir or work / "demo" / args.demo
        rows = []
        for budget in args.budgets.split(","):
            result = one_budget(demo_dir, work, budget)
            probes = result.pop("probes")
            print(budget, json.dumps(result, indent=1), flush=True)
            rows.append(
                {
                    "budget": budget,
                    "wall min": result["wall_s"] / 60,
                    "wall/budget": result["wall_over_budget"],
                    "recipes": "+".join(result["plan"]["recipes"]),
                    "folds": len(result["plan"]["folds"]),
                    "full": result["plan"]["full"],
                    "key accuracy": result["key_accuracy"],
                }
            )
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("probes (last budget's, measured on this machine):")
        for key, speed in probes.items():
            print(f"  {key}: {json.dumps(speed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
