"""Compare ensembles on out-of-fold logits, each scored by nested cross-validation on identical rows, and pick one.

foldwise blend input/digits cpu-cnn cpu-resnet [--metric accuracy|log_loss]
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from foldwise import __version__
from foldwise.blending.ensemble import METHODS, FittedBlend, fit_blend, nested_cv_proba
from foldwise.blending.metrics import metric_interval, metrics, paired_p, ranking, safe_score
from foldwise.blending.postprocess import evaluate
from foldwise.errors import FoldwiseError
from foldwise.fileio import save_npz, sha256_file, write_text_atomic
from foldwise.metrics import metric as competition_metric

log = logging.getLogger(__name__)

SIGNIFICANCE = 0.05  # McNemar p-value below which a difference to the best single model counts as real


@dataclass(frozen=True)
class OOF:
    """One experiment's out-of-fold logits over all its trained folds, sorted by id. With repeated k-fold, `logits`
    is the mean over the repeats that cover every row and `repeats` holds each one's logits (same rows)."""

    name: str
    ids: np.ndarray
    logits: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,) int
    folds: np.ndarray  # (N,) fold each row was held out in (repeat 0's)
    repeats: tuple[np.ndarray, ...] = ()  # (N, C) per complete repeat, when there are two or more


def fold_number(file: Path) -> int:
    """The fold of a run's file, from its folder's name (fold7/oof.npz -> 7)."""
    return int(re.sub(r"\D", "", file.parent.name) or -1)


def fold_files(exp_dir: Path, name: str) -> list[Path]:
    """fold*/<name> of one experiment in fold order, all trained on one folds file: a fold left from other folds (e.g.
    fold7 of REPEATS=3 after the folds were rebuilt with fewer repeats) is an error naming it, never averaged in."""
    files = sorted(exp_dir.glob(f"fold*/{name}"), key=fold_number)
    by_folds: dict[str, list[str]] = {}
    for f in files:
        config = f.parent / "config.yaml"
        meta = (yaml.safe_load(config.read_text()) or {}) if config.exists() else {}
        by_folds.setdefault(str(meta.get("folds_sha256", "")), []).append(f.parent.name)
    if len(by_folds) > 1:
        sets = "; ".join(f"{', '.join(dirs)} on folds sha256 {sha[:12] or '?'}" for sha, dirs in by_folds.items())
        raise FoldwiseError(
            f"{exp_dir}: its folds were trained on different folds files ({sets}). The folds changed since some "
            "of them trained: retrain the stale ones (`--force`) or delete the folders that no longer exist."
        )
    return files


def load_oof(exp_dir: Path) -> OOF:
    """Concatenate fold*/oof.npz of one experiment, sorted by id; repeats of repeated k-fold are averaged (a repeat
    whose folds are not all trained yet is left out, saying so)."""
    files = fold_files(exp_dir, "oof.npz")
    if not files:
        raise FoldwiseError(f"{exp_dir}: no fold*/oof.npz; train it first (`foldwise train -c configs/<recipe>.yaml`).")
    by_repeat: dict[int, list] = {}
    for f in files:
        part = np.load(f)
        repeat = int(part["repeat"]) if "repeat" in part.files else 0
        by_repeat.setdefault(repeat, []).append((fold_number(f), part))
    first, *rest = [(r, one_repeat(exp_dir, r, parts)) for r, parts in sorted(by_repeat.items())]
    ids, logits, labels, folds = first[1]
    complete = [logits]
    for r, (other_ids, other_logits, _, _) in rest:
        if np.array_equal(other_ids, ids):
            complete.append(other_logits)
        else:
            log.warning(
                "%s: repeat %d covers %d of %d rows; left out until its folds are trained",
                exp_dir,
                r,
                len(other_ids),
                len(ids),
            )
    repeats = tuple(complete) if len(complete) > 1 else ()
    mean = np.mean(repeats, axis=0, dtype=np.float64).astype(np.float32) if repeats else logits
    return OOF(name=exp_dir.name, ids=ids, logits=mean, labels=labels, folds=folds, repeats=repeats)


def one_repeat(exp_dir: Path, repeat: int, parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, logits, labels, folds) of one repeat's oof.npz files, sorted by id; an id held out twice is an error."""
    ids = np.concatenate([p["ids"] for _, p in parts])
    if len(np.unique(ids)) != len(ids):
        where = f" (repeat {repeat})" if repeat else ""
        raise FoldwiseError(
            f"{exp_dir}: an id appears in two folds' oof.npz{where}; the folds changed. Retrain with --force."
        )
    folds = np.concatenate([np.full(len(p["ids"]), fold) for fold, p in parts])
    order = np.argsort(ids, kind="stable")
    logits = np.concatenate([p["logits"] for _, p in parts])[order]
    labels = np.concatenate([p["labels"] for _, p in parts])[order]
    return ids[order], logits, labels, folds[order]


def check_aligned(oofs: list[OOF]) -> None:
    """Blends are only compared on identical OOF rows with identical labels."""
    ref = oofs[0]
    for other in oofs[1:]:
        if len(other.ids) != len(ref.ids) or not np.array_equal(other.ids, ref.ids):
            raise FoldwiseError(
                f"OOF rows differ: {ref.name} covers {len(ref.ids)} ids, {other.name} covers {len(other.ids)}. "
                "Train both on the same folds (e.g. --fold all for each) before blending."
            )
        if not np.array_equal(other.labels, ref.labels):
            raise FoldwiseError(f"OOF labels differ between {ref.name} and {other.name}; the folds changed. Retrain.")


def candidates(names: list[str]) -> list[tuple[str, str, list[str]]]:
    """(candidate, method, models): every model alone, then every ensemble method over all models."""
    rows = [(name, "single", [name]) for name in names]
    if len(names) > 1:
        # geometric_mean is left out: the mean of log-softmaxes differs from the mean of logits by a per-row
        # constant, so after softmax it is exactly mean_logits (same row twice in the table otherwise).
        skip = {"single", "geometric_mean"}
        rows += [(method, method, list(names)) for method in METHODS if method not in skip]
    return rows


def rank_key(metric: str):
    """Sort key of candidate rows, best first (metrics.ranking: by `metric`, the other breaking ties)."""
    order = ranking(metric)
    if metric in ("accuracy", "log_loss"):
        return lambda row: order(row["accuracy"], row["log_loss"])
    return lambda row: order(row["score"], row["log_loss"])


@dataclass(frozen=True)
class BlendResult:
    """Scored candidates (best first), the chosen blend refitted on all OOF rows, and nested-CV probabilities."""

    rows: list[dict]
    fitted: FittedBlend
    probs: dict[str, np.ndarray]  # candidate -> (N, C) nested-CV OOF probabilities
    labels: np.ndarray
    ids: np.ndarray
    inputs: dict[str, str]  # model -> oof_digest of the OOF logits the blend was fitted on
    postprocess: dict  # the metric's post-processing, scored by CV over the OOF rows (postprocess.evaluate)


def compare(oofs: list[OOF], metric: str = "accuracy", seed: int = 0) -> BlendResult:
    """Score every candidate by nested CV on identical OOF rows with the competition's metric (accuracy and log loss
    beside it); each against the best single model by McNemar (accuracy) or a paired bootstrap (other metrics)."""
    check_aligned(oofs)
    scored, key = competition_metric(metric), rank_key(metric)
    labels, by_name = oofs[0].labels, {o.name: o.logits for o in oofs}
    rows, probs = [], {}
    for name, method, models in candidates(list(by_name)):
        p = nested_cv_proba(method, models, [by_name[m] for m in models], labels, metric=metric, seed=seed)
        lo, hi = metric_interval(p, labels, scored, seed=seed)
        row = dict(
            candidate=name, method=method, models=models, metric=scored.name, score=safe_score(scored, p, labels)
        )
        rows.append(dict(row, **metrics(p, labels), ci_low=lo, ci_high=hi))
        probs[name] = p
    best_single = min((r for r in rows if r["method"] == "single"), key=key)["candidate"]
    for r in rows:
        r["p_vs_best_single"] = paired_p(probs[r["candidate"]], probs[best_single], labels, scored, seed)
        r["significant"] = r["candidate"] != best_single and r["p_vs_best_single"] < SIGNIFICANCE
        r["best_single"] = best_single
    rows.sort(key=key)
    chosen = rows[0]
    fitted = fit_blend(
        chosen["method"], chosen["models"], [by_name[m] for m in chosen["models"]], labels, metric=metric, seed=seed
    )
    inputs = {o.name: oof_digest(o) for o in oofs}
    post = evaluate(probs[chosen["candidate"]], labels, scored, seed)
    return BlendResult(rows, fitted, probs, labels, oofs[0].ids, inputs, post)


def write_blend(result: BlendResult, classes: list[str], out_dir: Path, metric: str, seed: int) -> dict:
    """blend.json (the chosen, fitted blend + every candidate's scores) and the nested-CV probabilities."""
    choice = {
        "chosen": result.rows[0]["candidate"],
        "metric": metric,
        "seed": seed,
        "blend": result.fitted.to_dict(),
        "classes": classes,
        "oof_rows": int(len(result.ids)),
        "candidates": result.rows,
        "inputs": result.inputs,
        "postprocess": result.postprocess,
        "foldwise_version": __version__,
    }
    arrays = {f"probs/{name}": p.astype(np.float32) for name, p in result.probs.items()}
    candidates_npz = save_npz(out_dir / "oof_candidates.npz", ids=result.ids, labels=result.labels, **arrays)
    choice["oof_candidates_sha256"] = sha256_file(candidates_npz)  # the report checks it belongs to this blend.json
    write_text_atomic(out_dir / "blend.json", json.dumps(choice, indent=2) + "\n")
    return choice


def oof_digest(oof: OOF) -> str:
    """sha256 of an experiment's OOF rows (ids, logits, labels, folds): a blend fitted on other logits is stale."""
    digest = hashlib.sha256()
    for array in (oof.ids.astype(str), oof.logits, oof.labels, oof.folds):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def check_inputs_unchanged(choice: dict, exp_dirs: dict[str, Path], blend_path: Path) -> None:
    """Refuse a blend.json fitted on OOF logits that have changed since (a model retrained, a fold added)."""
    inputs = choice.get("inputs")
    if inputs is None:
        raise FoldwiseError(
            f"{blend_path}: records no input logits (an older foldwise wrote it); rerun `foldwise blend`."
        )
    changed = [name for name, digest in inputs.items() if oof_digest(load_oof(exp_dirs[name])) != digest]
    if changed:
        raise FoldwiseError(
            f"{blend_path}: fitted on out-of-fold logits of {', '.join(changed)} that have changed since (retrained or "
            "new folds); rerun `foldwise blend` so the blend is chosen and fitted on the current ones."
        )
