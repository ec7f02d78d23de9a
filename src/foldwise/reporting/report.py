"""The blend report, rebuilt from artifacts alone: report.md and a self-contained report.html with the same sections.

foldwise report input/digits
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from foldwise.blending.blend import OOF, check_inputs_unchanged, fold_files, load_oof
from foldwise.blending.calibration import softmax
from foldwise.blending.ensemble import FittedBlend
from foldwise.blending.postprocess import decision_of
from foldwise.data.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import sha256_file, write_text_atomic
from foldwise.reporting import gallery, plots
from foldwise.reporting.candidates import candidates_section, decision_section
from foldwise.reporting.render import Section, render_html, render_markdown
from foldwise.reporting.runplan import budget_section, folds_section
from foldwise.reporting.sections import config_section, data_section, repeats_section, test_source_section
from foldwise.workspace import Workspace


@dataclass(frozen=True)
class BlendEvidence:
    """What `foldwise blend` left behind, read once: its choice, the candidates' nested-CV probabilities and each
    model's OOF logits and learning curves."""

    choice: dict  # blend.json
    fitted: FittedBlend
    ids: np.ndarray  # OOF ids, rows as in `probs`
    labels: np.ndarray  # OOF labels
    probs: dict[str, np.ndarray]  # candidate -> nested-CV OOF probabilities
    oofs: list[OOF]  # the single models', in candidate-table order
    histories: dict[str, dict[str, pd.DataFrame]]  # model -> fold -> history.csv
    blend_sha256: str  # of the blend.json this report describes

    @property
    def chosen(self) -> str:
        """The chosen candidate's name."""
        return self.choice["candidates"][0]["candidate"]

    @property
    def best_single(self) -> str:
        """The best single model's name."""
        return self.choice["candidates"][0]["best_single"]


def read_evidence(ws: Workspace, comp: Competition) -> BlendEvidence:
    """Load blend.json, oof_candidates.npz and the single models' OOF logits and histories."""
    out = ws.blend_dir(comp.name)
    if not (out / "blend.json").exists() or not (out / "oof_candidates.npz").exists():
        raise FoldwiseError(f"{out}: no blend.json / oof_candidates.npz; run `foldwise blend` first.")
    choice = json.loads((out / "blend.json").read_text())
    if choice.get("oof_candidates_sha256") != sha256_file(out / "oof_candidates.npz"):
        raise FoldwiseError(
            f"{out / 'oof_candidates.npz'}: not the one {out / 'blend.json'} was written with (a "
            "blend run was interrupted); rerun `foldwise blend`."
        )
    saved = np.load(out / "oof_candidates.npz")
    probs = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("probs/")}
    names = [r["candidate"] for r in choice["candidates"] if r["method"] == "single"]
    dirs = {n: ws.comp_dir(comp.name) / n for n in names}
    histories = {n: {p.parent.name: pd.read_csv(p) for p in fold_files(d, "history.csv")} for n, d in dirs.items()}
    check_inputs_unchanged(choice, dirs, out / "blend.json")
    oofs = [load_oof(d) for d in dirs.values()]
    fitted = FittedBlend.from_dict(choice["blend"])
    digest = sha256_file(out / "blend.json")
    return BlendEvidence(choice, fitted, saved["ids"], saved["labels"], probs, oofs, histories, digest)


def write_plots(evidence: BlendEvidence, comp: Competition, out: Path) -> list[str]:
    """The PNGs drawn from the blend's OOF evidence (what blend.json pins down), into the blend directory; their
    names."""
    rows, classes, labels, probs = (
        evidence.choice["candidates"],
        evidence.choice["classes"],
        evidence.labels,
        evidence.probs,
    )
    chosen, best = evidence.chosen, evidence.best_single
    plots.candidates(rows, out / "candidates.png")
    plots.per_class(probs[chosen], probs[best], labels, classes, chosen, best, out / "per_class.png")
    plots.confusion(probs[chosen], labels, classes, f"OOF confusion matrix: {chosen}", out / "confusion.png")
    raw = {o.name: softmax(o.logits) for o in evidence.oofs}
    plots.reliability(raw, {o.name: probs[o.name] for o in evidence.oofs}, labels, out / "reliability.png")
    plots.accuracy_vs_models(rows, probs, labels, out / "models_vs_accuracy.png")
    return ["candidates.png", "per_class.png", "confusion.png", "reliability.png", "models_vs_accuracy.png"]


def oof_figures(ws: Workspace, comp: Competition, evidence: BlendEvidence, reuse: bool) -> dict:
    """Draw the OOF-evidence plots and galleries; their gallery texts. With `reuse` (the loop's second report,
    right after its blend step drew them) those drawn for this very blend.json and folds sidecar (plots.json holds
    both digests) and still on disk are kept: the full retrain changes none of them, and redrawing took 3.5 s of the
    5.9 s a report took on the ordinal demo. Anything missing or unreadable in plots.json draws them again."""
    out, stamp = ws.blend_dir(comp.name), ws.blend_dir(comp.name) / "plots.json"
    sidecar = ws.folds_csv(comp.name).with_suffix(".json")  # its test_pairs make the look-alikes gallery
    key = {"blend_sha256": evidence.blend_sha256, "folds_sha256": sha256_file(sidecar) if sidecar.exists() else ""}
    if reuse and stamp.exists():
        try:
            saved = json.loads(stamp.read_text())
            if {k: saved[k] for k in key} == key and all((out / f).exists() for f in saved["files"]):
                return {"mistakes": saved["texts"]["mistakes"], "look_alikes": saved["texts"]["look_alikes"]}
        except (ValueError, KeyError, TypeError):
            pass  # written by something else: draw again
    drawn = write_plots(evidence, comp, out)
    probs = evidence.probs[evidence.chosen]
    texts = {
        "mistakes": gallery.confident_mistakes(comp, evidence.ids, probs, evidence.labels, out / "mistakes.png"),
        "look_alikes": gallery.look_alikes(ws, comp, out / "look_alikes.png"),
    }
    files = drawn + ["mistakes.png"] * has_mistakes(texts) + ["look_alikes.png"] * bool(texts["look_alikes"])
    write_text_atomic(stamp, json.dumps({**key, "files": files, "texts": texts}, indent=1))
    return texts


def has_mistakes(texts: dict) -> bool:
    """Whether the confident-mistakes gallery was drawn (there were OOF mistakes)."""
    return texts["mistakes"] != gallery.NO_MISTAKES


def build_sections(ws: Workspace, comp: Competition, reuse: bool = False) -> list[Section]:
    """Every section, with its plots written into the blend directory (`reuse`: see oof_figures)."""
    evidence = read_evidence(ws, comp)
    out = ws.blend_dir(comp.name)
    plots.class_counts(comp, out / "class_counts.png")
    plots.learning_curves(evidence.histories, out / "learning_curves.png")
    texts = oof_figures(ws, comp, evidence, reuse)
    return [
        decision_section(evidence.choice, evidence.fitted, evidence.blend_sha256),
        data_section(ws, comp),
        folds_section(ws, comp),
        *[s for s in [budget_section(ws, comp)] if s is not None],
        candidates_section(evidence.choice),
        *[s for s in [repeats_section(evidence.oofs, evidence.choice.get("metric", comp.metric))] if s is not None],
        Section("Learning curves", ["Per fold, per epoch (history.csv)."], None, ["learning_curves.png"]),
        per_class_section(evidence),
        Section(
            "Calibration",
            ["Reliability per model, raw softmax vs temperature-scaled (nested CV)."],
            None,
            ["reliability.png"],
        ),
        *gallery_sections(ws, comp, evidence, texts),
        test_source_section(ws, comp, evidence.fitted),
        config_section(ws, comp, [o.name for o in evidence.oofs]),
    ]


def per_class_section(evidence: BlendEvidence) -> Section:
    """Precision, recall and F1 per class of the chosen blend's OOF predictions, its per-class accuracy against the
    best single model's, and the confusion matrix normalized by true class."""
    from sklearn.metrics import precision_recall_fscore_support

    classes, labels = evidence.choice["classes"], evidence.labels
    predicted = decision_of(evidence.choice).labels(evidence.probs[evidence.chosen])
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(len(classes))), zero_division=0
    )
    body = [
        [c, int(n), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}"]
        for c, n, p, r, f in zip(classes, support, precision, recall, f1)
    ]
    text = [
        f"Chosen blend ({evidence.chosen}, with its post-processing) vs {evidence.best_single}, OOF; the table is "
        "the chosen blend's, the confusion matrix is normalized by true class."
    ]
    table = (["class", "OOF images", "precision", "recall", "F1"], body[:100])
    return Section("Per-class accuracy and confusion", text, table, ["per_class.png", "confusion.png"])


def gallery_sections(ws: Workspace, comp: Competition, evidence: BlendEvidence, texts: dict) -> list[Section]:
    """The images behind the numbers: confident mistakes, train/test look-alikes (drawn by oof_figures), and test
    predictions per class (drawn here: the full retrain changes them)."""
    sections = [Section("Most confident mistakes", [texts["mistakes"]], None, ["mistakes.png"] * has_mistakes(texts))]
    if texts["look_alikes"]:
        sections.append(Section("Test images like training images", [texts["look_alikes"]], None, ["look_alikes.png"]))
    text = gallery.test_examples(ws, comp, evidence.fitted, ws.blend_dir(comp.name) / "test_examples.png")
    return sections + [Section("Test predictions by class", [text], None, ["test_examples.png"])]


def write_report(ws: Workspace, comp: Competition, reuse: bool = False) -> Path:
    """Rebuild output/<comp>/blend/report.md and report.html from artifacts alone; `reuse` keeps the OOF plots
    already drawn for this blend.json (the loop's second report), else every plot is drawn again."""
    out = ws.blend_dir(comp.name)
    sections = build_sections(ws, comp, reuse)
    title = f"foldwise report: {comp.name}"
    write_text_atomic(out / "report.md", render_markdown(sections, title))
    write_text_atomic(out / "report.html", render_html(sections, title, out))
    return out / "report.md"
