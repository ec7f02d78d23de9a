"""The default recipes (or named ones) on real photos, as a new user runs them: `bash submit.sh` on a shared data
archive, whole-pipeline wall time and the submission's accuracy on the held-back key.

    python bench/bench_defaults.py intel-mini                       # the default recipes, all folds
    python bench/bench_defaults.py cifar10-50k --folds 0            # FOLDS=0: the 80/20 holdout + full retrain
    python bench/bench_defaults.py intel-mini --recipes cpu-cnn,cpu-resnet,cpu-effnet   # another set
    python bench/bench_defaults.py intel-mini --set optim.epochs=3 --time 20m --workdir /tmp/w

Unpacks ../shared/data/<name>.tar.gz into a fresh workspace (kept with --workdir), runs submit.sh with FOLDS / SET /
TIME, and prints: wall minutes, which recipes ran (the chooser's reasons are in the log), each recipe's OOF accuracy,
the blend's choice, and the key accuracy of submission.csv (scored by `foldwise score`'s function). Run it alone on
the machine: it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))

from foldwise.blending.submit import score_submission  # noqa: E402
from foldwise.data.formats import load_competition  # noqa: E402


def unpack(name: str, root: Path) -> Path:
    """../shared/data/<name>.tar.gz into root/input/<name> (the archive holds one folder of that name)."""
    target = root / "input"
    if not (target / name).exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED / f"{name}.tar.gz") as tar:
            tar.extractall(target, filter="data")
    return target / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="an archive name under ../shared/data (intel-mini, cifar10-50k, cifar10-mini)")
    parser.add_argument("--recipes", default="", help="comma-separated recipe names or files (default: the chooser's)")
    parser.add_argument("--folds", default="all")
    parser.add_argument("--set", action="append", default=[], help="recipe overrides, as SET")
    parser.add_argument("--time", default="", help="a TIME budget, e.g. 20m")
    parser.add_argument("--workdir", type=Path, help="keep the workspace here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foldwise-defaults-") as tmp:
        root = args.workdir or Path(tmp)
        shutil.rmtree(root / "output", ignore_errors=True)
        shutil.rmtree(root / "folds", ignore_errors=True)
        comp_dir = unpack(args.data, root)
        shutil.rmtree(root / "probe-cache", ignore_errors=True)  # every run pays for its own speed probes
        env = {**os.environ, "ROOT": str(root), "FOLDS": args.folds, "SET": " ".join(args.set), "TIME": args.time}
        env["FOLDWISE_CACHE"] = str(root / "probe-cache")
        recipes = [r for r in args.recipes.split(",") if r]
        log = root / "submit.log"
        start = time.time()
        with open(log, "w") as out:
            command = ["bash", str(REPO / "submit.sh"), str(comp_dir), *recipes]
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        wall = time.time() - start
        if done.returncode:
            sys.exit(f"submit.sh failed ({done.returncode}); see {log}")
        comp = load_competition(comp_dir)
        out_dir = root / "output" / comp.name
        key = comp.solution_path or out_dir / "solution.csv"
        scored = score_submission(out_dir / "submission.csv", key, comp.metric)
        oof = {}
        for config in sorted(out_dir.glob("*/fold*/config.yaml")):
            meta = yaml.safe_load(config.read_text())
            oof.setdefault(config.parent.parent.name, []).append(round(meta["oof_score"]["valid_acc"], 4))
        blend = json.loads((out_dir / "blend" / "blend.json").read_text())
        print(f"{args.data}: folds {args.folds}, recipes {recipes or 'default'}, SET {args.set}, TIME {args.time}")
        print(f"wall {wall / 60:.1f} min; key accuracy {scored['accuracy']:.4f} ({scored['correct']}/{scored['rows']})")
        print(f"OOF accuracy per recipe and fold: {json.dumps(oof)}")
        print(f"blend chose {blend['chosen']}: {blend['candidates'][0]}")
        print(f"log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
