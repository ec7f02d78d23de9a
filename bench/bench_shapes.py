"""Competition shapes measured on the offline demos: what grouped folds, QWK cut points and imbalance handling do.

    python bench/bench_shapes.py [--recipe cpu-cnn] [--set optim.epochs=15 ...] [--only grouped,ordinal,imbalance]

- grouped: the grouped demo (4 augmented copies per training image) with its groups kept in one fold, and the same
  images with plain stratified folds (no group column, no duplicate search): OOF accuracy of each against the
  accuracy on the held-back key. Grouping should bring OOF down towards the key; plain folds leak copies.
- ordinal: the ordinal demo (grades 0-4, QWK): the nested-CV gain of the fitted cut points, and QWK on the key with
  argmax and with the cut points (both from the same full-retrain test probabilities).
- imbalance: the binary demo (5% positives, ROC-AUC): OOF ROC-AUC and macro F1 with no correction, balanced class
  weights and a balanced sampler, 5 folds each; decides `auto`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from foldwise.blending.blend import load_oof  # noqa: E402
from foldwise.blending.calibration import softmax  # noqa: E402
from foldwise.blending.ensemble import FittedBlend  # noqa: E402
from foldwise.blending.postprocess import fit  # noqa: E402
from foldwise.blending.submit import load_test_logits  # noqa: E402
from foldwise.cli import main as foldwise  # noqa: E402
from foldwise.data import demo  # noqa: E402
from foldwise.data.formats import load_competition  # noqa: E402
from foldwise.metrics import metric  # noqa: E402
from foldwise.workspace import Workspace  # noqa: E402


def run(root: Path, comp: Path, recipe: str, overrides: list[str], *extra: str) -> None:
    """folds -> every fold -> blend -> full retrain -> submission, in this process."""
    sets = [x for o in overrides for x in ("--set", o)]
    assert foldwise(["-q", "--root", str(root), "run", str(comp), "-c", recipe, *sets, *extra]) == 0


def key_labels(comp_dir: Path, classes) -> np.ndarray:
    """The held-back key's labels as class indices, in test-id order."""
    comp = load_competition(comp_dir)
    key = pd.read_csv(comp_dir / "solution.csv", dtype=str).set_index("id").iloc[:, 0]
    return np.array([list(classes).index(key[i]) for i in comp.test_ids])


def grouped(tmp: Path, recipe: str, overrides: list[str]) -> dict:
    comp = demo.build_grouped(tmp / "input" / "grouped")
    plain = tmp / "input" / "plain"
    shutil.copytree(comp, plain)
    (plain / "foldwise.yaml").unlink()
    out = {}
    for name, path, extra in (("grouped folds", comp, ()), ("plain folds", plain, ("--no-dedup",))):
        root = tmp / name.replace(" ", "-")
        run(root, path, recipe, overrides, *extra)
        oof = load_oof(root / "output" / path.name / Path(recipe).stem)
        key = pd.read_csv(path / "solution.csv", dtype=str)
        submission = pd.read_csv(root / "output" / path.name / "submission.csv", dtype=str)
        out[name] = {
            "oof_accuracy": float((oof.logits.argmax(1) == oof.labels).mean()),
            "key_accuracy": float((key["label"] == submission["label"]).mean()),
        }
    return out


def ordinal(tmp: Path, recipe: str, overrides: list[str]) -> dict:
    comp_dir = demo.build_ordinal(tmp / "input" / "ordinal")
    root = tmp / "ordinal"
    run(root, comp_dir, recipe, overrides)
    ws, comp = Workspace(root), load_competition(comp_dir)
    out = ws.blend_dir(comp.name)
    choice = json.loads((out / "blend.json").read_text())
    fitted = FittedBlend.from_dict(choice["blend"])
    logits = [load_test_logits(ws.comp_dir(comp.name) / m, comp.test_ids)[0] for m in fitted.models]
    probs, truth, qwk = fitted.predict_proba(logits), key_labels(comp_dir, comp.classes), metric("qwk")
    saved = np.load(out / "oof_candidates.npz")  # the cut points fitted on every OOF row, used or not
    cuts = fit("qwk_cuts", saved[f"probs/{choice['chosen']}"], saved["labels"], qwk)
    return {
        "postprocess": choice["postprocess"],
        "key_qwk_argmax": qwk(probs, truth),
        "key_qwk_cuts": qwk(cuts.scored_probs(probs), truth),
    }


def imbalance(tmp: Path, recipe: str, overrides: list[str]) -> dict:
    comp_dir = demo.build_binary(tmp / "input" / "binary")
    out = {}
    for name, extra in (
        ("none", []),
        ("class_weights", ["optim.class_weights=balanced"]),
        ("sampler", ["data.sampler=balanced"]),
    ):
        root = tmp / f"imbalance-{name}"
        run(root, comp_dir, recipe, overrides + extra)
        oof = load_oof(root / "output" / "binary" / Path(recipe).stem)
        probs = softmax(oof.logits)
        out[name] = {
            "oof_roc_auc": metric("roc_auc")(probs, oof.labels),
            "oof_macro_f1": metric("macro_f1")(probs, oof.labels),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="cpu-cnn")
    parser.add_argument("--set", action="append", default=[], help="recipe overrides")
    parser.add_argument("--only", default="grouped,ordinal,imbalance")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="foldwise-shapes-") as tmp:
        for name in args.only.split(","):
            results[name] = {"grouped": grouped, "ordinal": ordinal, "imbalance": imbalance}[name](
                Path(tmp), args.recipe, args.set
            )
            print(name, json.dumps(results[name], indent=2, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
