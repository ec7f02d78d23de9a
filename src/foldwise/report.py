"""The blend report: a markdown table of every candidate on identical OOF rows, and plots to look at."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from foldwise import __version__  # noqa: E402
from foldwise.blend import OOF, apply_method, compare, softmax  # noqa: E402
from foldwise.fileio import write_atomic, write_text_atomic  # noqa: E402


def markdown_table(rows: list[dict]) -> str:
    """Candidates as a markdown table, best first."""
    lines = ["| rank | candidate | method | models | OOF accuracy | OOF log loss |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['candidate']} | {r['method']} | {', '.join(r['models'])} | "
                     f"{r['accuracy']:.4f} | {r['log_loss']:.4f} |")  # fmt: skip
    return "\n".join(lines)


def plot_candidates(rows: list[dict], path: Path) -> None:
    """Horizontal bar chart of OOF accuracy per candidate."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    names = [r["candidate"] for r in rows][::-1]
    acc = [r["accuracy"] for r in rows][::-1]
    bars = ax.barh(names, acc, color=["tab:orange" if r["method"] != "single" else "tab:blue" for r in rows][::-1])
    ax.bar_label(bars, fmt="%.4f", padding=3)
    lo = min(acc)
    ax.set_xlim(max(0.0, lo - (1 - lo) * 1.5 - 0.01), 1.0)
    ax.set_xlabel("OOF accuracy (blue: single model, orange: ensemble)")
    ax.set_title("Candidates on identical out-of-fold rows")
    fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def plot_confusion(probs: np.ndarray, labels: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    """Confusion matrix of a candidate's OOF predictions, class names on both axes."""
    size = min(4 + 0.45 * len(classes), 24)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels, probs.argmax(1), labels=np.arange(len(classes)), display_labels=classes, ax=ax,
        xticks_rotation="vertical", colorbar=False, include_values=len(classes) <= 20,
    )  # fmt: skip
    ax.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def write_blend(oofs: list[OOF], classes: list[str], out_dir: Path) -> dict:
    """Compare candidates, write report.md, plots and blend.json (the chosen candidate); return blend.json's dict."""
    rows = compare(oofs)
    best = rows[0]
    probs = apply_method(best["method"], [softmax(o.logits) for o in oofs if o.name in best["models"]])
    plot_candidates(rows, out_dir / "candidates.png")
    plot_confusion(
        probs, oofs[0].labels, classes, f"OOF confusion matrix: {best['candidate']}", out_dir / "confusion.png"
    )
    choice = {
        "method": best["method"], "models": best["models"], "metric": "accuracy",
        "oof_rows": int(len(oofs[0].ids)), "classes": classes, "candidates": rows, "foldwise_version": __version__,
    }  # fmt: skip
    write_text_atomic(out_dir / "blend.json", json.dumps(choice, indent=2) + "\n")
    report = "\n".join([
        "# Blend report", "",
        f"{len(oofs)} model(s), {len(oofs[0].ids)} out-of-fold rows each (identical ids), {len(classes)} classes.",
        "Max-confidence takes, per image, the model whose top softmax probability is highest; mean_probability",
        "averages the models' softmax probabilities. Chosen by OOF accuracy (log loss breaks ties).", "",
        markdown_table(rows), "",
        f"**Chosen:** `{best['candidate']}` ({best['method']} of {', '.join(best['models'])}): "
        f"OOF accuracy {best['accuracy']:.4f}, log loss {best['log_loss']:.4f}.", "",
        "![candidates](candidates.png)", "", "![confusion matrix](confusion.png)", "",
    ])  # fmt: skip
    write_text_atomic(out_dir / "report.md", report)
    return choice
