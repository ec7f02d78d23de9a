"""The report's sections that read artifacts beyond the blend: data facts, test-logit sources, recipes, revision."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml

from foldwise.blending.blend import load_oof
from foldwise.blending.ensemble import FittedBlend
from foldwise.blending.submit import fold_average_logits, load_test_logits
from foldwise.data import datasummary, fingerprints
from foldwise.data.competition import Competition
from foldwise.data.describe import submission_text
from foldwise.data.leakage import chain_text
from foldwise.reporting.render import Section
from foldwise.workspace import Workspace


def git_revision() -> str:
    """The foldwise source tree's git revision (+ '-dirty' when modified), or 'unknown' outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def duplicates_text(ws: Workspace, comp: Competition) -> str:
    """What `foldwise folds` found (exact + perceptual-hash near duplicates), from the folds sidecar."""
    sidecar = ws.folds_csv(comp.name).with_suffix(".json")
    found = json.loads(sidecar.read_text()).get("duplicates", {}) if sidecar.exists() else {}
    if "test_images_like_train" not in found:  # folds ran with --no-dedup (or before duplicate search existed)
        cache = ws.cache_dir(comp.name)
        train, test = (
            fingerprints.cached_digests(s, cache, n)
            for s, n in ((comp.train_images, "train"), (comp.test_images, "test"))
        )
        if train is None or test is None:
            return (
                "Duplicates: not checked (`foldwise folds` ran with --no-dedup); run it without --no-dedup to "
                "find exact and near duplicates and keep them inside one fold."
            )
        exact = datasummary.exact_duplicates(train, test)
        return (
            f"Duplicates (exact content only, from cached content digests; the folds ignore them "
            f"(--no-dedup)): {exact['train_groups']} groups within train, {exact['train_test']} test images "
            "identical to a training image."
        )
    return (
        f"Duplicates (`foldwise folds`, {found['hash']}, threshold {found['near_duplicate_threshold']} bits): "
        f"{found['train_duplicate_groups']} groups within train ({found['train_images_in_groups']} images, "
        f"{found['train_byte_identical_images']} byte-identical; each group kept inside one fold), "
        f"{found['test_images_like_train']} test images like a training image "
        f"({found['test_byte_identical_to_train']} byte-identical)."
        + "".join(f" Found {chain_text(c)}." for c in found.get("chains_split", []))
    )


def data_section(ws: Workspace, comp: Competition) -> Section:
    """Classes, counts, image sizes and modes (sampled), and duplicates."""
    counts = np.bincount(np.asarray(comp.train_labels), minlength=len(comp.classes))
    sizes = datasummary.image_stats(comp.train_images)
    text = [
        f"`{comp.root}` ({comp.layout} layout): {len(comp.train_ids)} labeled images in {len(comp.classes)} classes "
        f"({counts.min()}-{counts.max()} per class), {len(comp.test_ids)} unlabeled test images.",
        f"Training image sizes (sample of {sizes['sampled']}): {sizes['sizes']}; modes: {sizes['modes']}.",
        duplicates_text(ws, comp),
        f"Submission format: {submission_text(comp)}.",
        f"Metric: {comp.metric}.",
    ]
    header = ["class", "train images"]
    return Section("Data", text, (header, [[c, int(n)] for c, n in zip(comp.classes, counts)]), ["class_counts.png"])


def test_source_section(ws: Workspace, comp: Competition, fitted: FittedBlend) -> Section:
    """Which test logits the submission uses (full retrain vs fold average), with the evidence."""
    header = ["model", "submission uses", "fold OOF accuracy (mean ± sd)", "full vs fold-average agreement on test"]
    body = []
    for exp in fitted.models:
        exp_dir = ws.comp_dir(comp.name) / exp
        _, source = load_test_logits(exp_dir, comp.test_ids)
        oof = load_oof(exp_dir)
        logits = oof.repeats[0] if oof.repeats else oof.logits  # repeat 0's logits go with its fold numbers
        accs = [
            float((logits[oof.folds == k].argmax(1) == oof.labels[oof.folds == k]).mean()) for k in np.unique(oof.folds)
        ]
        average = fold_average_logits(exp_dir, comp.test_ids)  # exactly what the submission averages
        agree = ""
        if (exp_dir / "full" / "test.npz").exists() and average is not None:
            full = np.load(exp_dir / "full" / "test.npz")["logits"].argmax(1)
            agree = f"{(full == average.argmax(1)).mean():.1%} of {len(full)}"
        body.append([exp, source, f"{np.mean(accs):.4f} ± {np.std(accs):.4f} ({len(accs)} folds)", agree])
    text = [
        "Each model's test logits come from its full retrain (all labeled data, the same recipe and epoch count as the "
        "folds; or, where a time budget had room only for that, a warm one: from a fold model's weights, a shorter "
        "schedule at a lower learning rate) when it exists, else from the mean of its fold models' logits. "
        "The full model sees 1/k more data; "
        "the fold-to-fold spread of OOF accuracy bounds how much a single run's luck matters, and the agreement "
        "column shows how often the two choices would submit the same label."
    ]
    return Section("Full retrain vs fold average", text, (header, body))


def config_section(ws: Workspace, comp: Competition, models: list[str]) -> Section:
    """Recipes as resolved in the runs, folds file checksum, and the code revision."""
    text = [f"foldwise revision: `{git_revision()}`."]
    for exp in models:
        configs = sorted((ws.comp_dir(comp.name) / exp).glob("*/config.yaml"))
        if configs:
            meta = yaml.safe_load(configs[0].read_text())
            text.append(f"`{exp}` (folds sha256 {meta['folds_sha256'][:12]}, run seeds = recipe seed*100 + fold):")
            text.append("```\n" + yaml.safe_dump(meta["recipe"], sort_keys=False).strip() + "\n```")
    return Section("Configuration", text)


def repeats_section(oofs: list, metric_name: str) -> Section | None:
    """Repeated k-fold: each model's OOF score per repeat, their spread, and the score of the repeats' mean logits
    (what the blend is fitted on); None without repeats."""
    from foldwise.blending.calibration import softmax
    from foldwise.blending.metrics import safe_score
    from foldwise.metrics import metric

    with_repeats = [o for o in oofs if o.repeats]
    if not with_repeats:
        return None
    scored = metric(metric_name)
    count = max(len(o.repeats) for o in with_repeats)
    header = ["model", *[f"repeat {r}" for r in range(count)], "mean ± sd", "repeats' mean logits"]
    body = []
    for oof in with_repeats:
        scores = [safe_score(scored, softmax(logits), oof.labels) for logits in oof.repeats]
        cells = [f"{s:.4f}" for s in scores] + [""] * (count - len(scores))
        mean = safe_score(scored, softmax(oof.logits), oof.labels)
        body.append([oof.name, *cells, f"{np.mean(scores):.4f} ± {np.std(scores):.4f}", f"{mean:.4f}"])
    text = [
        f"Repeated k-fold: every row is held out once per repeat, each repeat with its own seeded split. The spread "
        f"of {scored.name} between repeats is how much one split's luck moves the OOF score; the blend is chosen and "
        "fitted on the mean of the repeats' logits (the last column), and the submission averages all fold models."
    ]
    return Section("Repeated k-fold", text, (header, body))
