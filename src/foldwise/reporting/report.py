"""The blend report, rebuilt from artifacts alone: report.md and a self-contained report.html with the same sections.

foldwise report input/digits
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from foldwise.blending.blend import SIGNIFICANCE, load_oof
from foldwise.blending.ensemble import FittedBlend, softmax
from foldwise.data import datasummary, leakage
from foldwise.data.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import write_text_atomic
from foldwise.reporting import plots
from foldwise.workspace import Workspace


@dataclass
class Section:
    """One report section: paragraphs (light markdown), an optional table and optional plots (PNG file names)."""

    title: str
    text: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list]] | None = None
    images: list[str] = field(default_factory=list)


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


def candidate_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Candidates with accuracy, its bootstrap 95% interval, top-5, log loss, ECE and McNemar p vs best single."""
    header = [
        "rank",
        "candidate",
        "method",
        "accuracy",
        "95% CI",
        "top-5",
        "log loss",
        "ECE",
        "p vs best single",
        "verdict",
    ]
    body = []
    for i, r in enumerate(rows, 1):
        if r["candidate"] == r["best_single"]:
            verdict = "best single model"
        elif r["significant"]:
            verdict = (
                "better (significant)" if r["accuracy"] > rows_acc(rows, r["best_single"]) else "worse (significant)"
            )
        else:
            verdict = "no significant difference"
        top5 = "" if r.get("top5") is None else f"{r['top5']:.4f}"
        body.append(
            [
                i,
                r["candidate"],
                r["method"],
                f"{r['accuracy']:.4f}",
                f"{r['ci_low']:.4f}-{r['ci_high']:.4f}",
                top5,
                f"{r['log_loss']:.4f}",
                f"{r['ece']:.4f}",
                f"{r['p_vs_best_single']:.3g}",
                verdict,
            ]
        )
    return header, body


def rows_acc(rows: list[dict], candidate: str) -> float:
    """Accuracy of a named candidate."""
    return next(r["accuracy"] for r in rows if r["candidate"] == candidate)


def duplicates_text(ws: Workspace, comp: Competition) -> str:
    """What `foldwise folds` found (exact + perceptual-hash near duplicates), from the folds sidecar."""
    sidecar = ws.folds_csv(comp.name).with_suffix(".json")
    found = json.loads(sidecar.read_text()).get("duplicates", {}) if sidecar.exists() else {}
    if "test_images_like_train" not in found:  # folds ran with --no-dedup (or before duplicate search existed)
        cache = ws.cache_dir(comp.name)
        train, test = (leakage.cached_digests(s, cache, n) for s, n in ((comp.train_images, "train"),
                                                                         (comp.test_images, "test")))  # fmt: skip
        if train is None or test is None:
            return ("Duplicates: not checked (`foldwise folds` ran with --no-dedup); run it without --no-dedup to "
                    "find exact and near duplicates and keep them inside one fold.")  # fmt: skip
        exact = datasummary.exact_duplicates(train, test)
        return (f"Duplicates (exact content only, from an earlier duplicate search's cache; the folds ignore them "
                f"(--no-dedup)): {exact['train_groups']} groups within train, {exact['train_test']} test images "
                "identical to a training image.")  # fmt: skip
    return (
        f"Duplicates (`foldwise folds`, {found['hash']}, threshold {found['near_duplicate_threshold']} bits): "
        f"{found['train_duplicate_groups']} groups within train ({found['train_images_in_groups']} images, "
        f"{found['train_byte_identical_images']} byte-identical; each group kept inside one fold), "
        f"{found['test_images_like_train']} test images like a training image "
        f"({found['test_byte_identical_to_train']} byte-identical)."
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
        "Submission format: " + ("one probability column per class (calibrated probabilities are written)."
                                 if comp.submission.wants_probabilities else "one label per test image."),
    ]  # fmt: skip
    header = ["class", "train images"]
    return Section("Data", text, (header, [[c, int(n)] for c, n in zip(comp.classes, counts)]), ["class_counts.png"])


def test_source_section(ws: Workspace, comp: Competition, fitted: FittedBlend) -> Section:
    """Which test logits the submission uses (full retrain vs fold average), with the evidence."""
    from foldwise.blending.submit import load_test_logits

    header = ["model", "submission uses", "fold OOF accuracy (mean ± sd)", "full vs fold-average agreement on test"]
    body = []
    for exp in fitted.models:
        exp_dir = ws.comp_dir(comp.name) / exp
        _, source = load_test_logits(exp_dir, comp.test_ids)
        oof = load_oof(exp_dir)
        accs = [
            float((oof.logits[oof.folds == k].argmax(1) == oof.labels[oof.folds == k]).mean())
            for k in np.unique(oof.folds)
        ]
        folds = sorted(exp_dir.glob("fold*/test.npz"))
        agree = ""
        if (exp_dir / "full" / "test.npz").exists() and folds:
            full = np.load(exp_dir / "full" / "test.npz")["logits"].argmax(1)
            avg = np.mean([softmax(np.load(f)["logits"]) for f in folds], axis=0).argmax(1)
            agree = f"{(full == avg).mean():.1%} of {len(full)}"
        body.append([exp, source, f"{np.mean(accs):.4f} ± {np.std(accs):.4f} ({len(accs)} folds)", agree])
    text = [
        "Each model's test logits come from its full retrain (all labeled data, the same recipe and epoch count as the "
        "folds) when it exists, else from the mean of its fold models' logits. The full model sees 1/k more data; "
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


def build_sections(ws: Workspace, comp: Competition) -> list[Section]:
    """Every section, with its plots written into the blend directory."""
    out = ws.blend_dir(comp.name)
    choice_path = out / "blend.json"
    if not choice_path.exists() or not (out / "oof_candidates.npz").exists():
        raise FoldwiseError(f"{out}: no blend.json / oof_candidates.npz; run `foldwise blend` first.")
    choice = json.loads(choice_path.read_text())
    rows, classes = choice["candidates"], choice["classes"]
    fitted = FittedBlend.from_dict(choice["blend"])
    saved = np.load(out / "oof_candidates.npz")
    labels, probs = saved["labels"], {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("probs/")}
    names = [r["candidate"] for r in rows if r["method"] == "single"]
    oofs = [load_oof(ws.comp_dir(comp.name) / n) for n in names]
    chosen, best_single = rows[0], rows[0]["best_single"]
    histories = {
        n: {p.parent.name: pd.read_csv(p) for p in sorted((ws.comp_dir(comp.name) / n).glob("fold*/history.csv"))}
        for n in names
    }

    plots.class_counts(comp, out / "class_counts.png")
    plots.learning_curves(histories, out / "learning_curves.png")
    plots.candidates(rows, out / "candidates.png")
    plots.per_class(
        probs[chosen["candidate"]],
        probs[best_single],
        labels,
        classes,
        chosen["candidate"],
        best_single,
        out / "per_class.png",
    )
    plots.confusion(
        probs[chosen["candidate"]],
        labels,
        classes,
        f"OOF confusion matrix: {chosen['candidate']}",
        out / "confusion.png",
    )
    plots.reliability(
        {o.name: softmax(o.logits) for o in oofs}, {n: probs[n] for n in names}, labels, out / "reliability.png"
    )
    plots.accuracy_vs_models(rows, probs, labels, out / "models_vs_accuracy.png")

    verdict = (
        "significant"
        if chosen["significant"]
        else "not significant (McNemar p = {:.3g})".format(chosen["p_vs_best_single"])
    )
    gain = chosen["accuracy"] - rows_acc(rows, best_single)
    summary = [
        f"Chosen: **{chosen['candidate']}** ({fitted.method} of {', '.join(fitted.models)}), by nested-CV OOF "
        f"{choice['metric']}: accuracy {chosen['accuracy']:.4f} "
        f"(95% CI {chosen['ci_low']:.4f}-{chosen['ci_high']:.4f}), log loss {chosen['log_loss']:.4f}.",
        f"Against the best single model ({best_single}): {gain:+.4f} accuracy, "
        + ("this is the best single model itself." if chosen["candidate"] == best_single else verdict + "."),
        f"Temperatures: {', '.join(f'{m} {t:.3f}' for m, t in zip(fitted.models, fitted.temperatures))}"
        + (
            f"; weights: {', '.join(f'{m} {w:.3f}' for m, w in zip(fitted.models, fitted.weights))}"
            if fitted.weights
            else ""
        ),
    ]
    method_text = [
        f"{choice['oof_rows']} out-of-fold rows, identical for every candidate. Every number is nested "
        "cross-validation: each row is predicted by a blend whose temperatures, weights or stacker were fitted "
        "without it (5 folds over the OOF rows, seeded). `max_confidence_raw` is the seed projects' ensemble "
        "(per image, the model with the highest raw logit); `max_confidence` does the same on temperature-calibrated "
        "probabilities; `mean_logits` is also the geometric mean of the calibrated probabilities (identical after "
        "softmax). CI: bootstrap 95% interval of accuracy. p: exact McNemar test against the best single "
        f"model; below {SIGNIFICANCE} counts as real.",
    ]
    return [
        Section("Decision", summary),
        data_section(ws, comp),
        Section("Candidates", method_text, candidate_table(rows), ["candidates.png", "models_vs_accuracy.png"]),
        Section("Learning curves", ["Per fold, per epoch (history.csv)."], None, ["learning_curves.png"]),
        Section(
            "Per-class accuracy and confusion",
            [f"Chosen blend vs {best_single}, OOF."],
            None,
            ["per_class.png", "confusion.png"],
        ),
        Section(
            "Calibration",
            ["Reliability per model, raw softmax vs temperature-scaled (nested CV)."],
            None,
            ["reliability.png"],
        ),
        test_source_section(ws, comp, fitted),
        config_section(ws, comp, names),
    ]


def render_markdown(sections: list[Section], title: str) -> str:
    """report.md: sections with GitHub tables and image links."""
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""] + [t + "\n" for t in s.text]
        if s.table:
            header, body = s.table
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body] + [""]
        lines += [f"![{name}]({name})\n" for name in s.images]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then the two bits of markdown the report uses inline: `code` and **bold**; fenced blocks as <pre>."""
    if text.startswith("```"):
        return "<pre>" + html.escape(text.strip("`").strip()) + "</pre>"
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


def render_html(sections: list[Section], title: str, image_dir: Path) -> str:
    """report.html: one file, plots embedded as base64 PNG."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [_inline(t) for t in s.text]
        if s.table:
            header, rows = s.table
            body.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            body.append("</table>")
        for name in s.images:
            data = base64.b64encode((image_dir / name).read_bytes()).decode()
            body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px}"
        "img{max-width:100%}pre{background:#f4f4f4;padding:8px;font-size:85%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(ws: Workspace, comp: Competition) -> Path:
    """Rebuild output/<comp>/blend/report.md and report.html from artifacts alone."""
    out = ws.blend_dir(comp.name)
    sections = build_sections(ws, comp)
    title = f"foldwise report: {comp.name}"
    write_text_atomic(out / "report.md", render_markdown(sections, title))
    write_text_atomic(out / "report.html", render_html(sections, title, out))
    return out / "report.md"
