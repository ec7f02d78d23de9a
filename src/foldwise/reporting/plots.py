"""Report plots (matplotlib, Agg): each function draws one PNG that a person would rather look at than a table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from foldwise.blending.metrics import metrics, reliability_curve  # noqa: E402
from foldwise.data.competition import Competition  # noqa: E402
from foldwise.fileio import write_atomic  # noqa: E402


def save(fig, path: Path, tight: bool = True) -> None:
    """Write a figure atomically and free it (laid out by tight_layout unless the caller placed its axes)."""
    if tight:
        fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)


def class_counts(comp: Competition, path: Path) -> None:
    """Training images per class."""
    counts = np.bincount(np.asarray(comp.train_labels), minlength=len(comp.classes))
    fig, ax = plt.subplots(figsize=(min(3 + 0.3 * len(counts), 16), 3))
    ax.bar(range(len(counts)), counts, color="tab:blue")
    if len(counts) <= 40:
        ax.set_xticks(range(len(counts)), comp.classes, rotation=90)
    ax.set_ylabel("train images")
    ax.set_title("Class balance")
    save(fig, path)


def learning_curves(histories: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """Per experiment: validation accuracy (top) and train/valid loss (bottom) per epoch, one line per fold."""
    fig, axes = plt.subplots(2, len(histories), figsize=(5 * len(histories), 6), squeeze=False)
    for col, (exp, folds) in enumerate(histories.items()):
        top, bottom = axes[0, col], axes[1, col]
        for i, (fold, h) in enumerate(folds.items()):
            color = f"C{i}"
            top.plot(h["epoch"], h["valid_acc"], color=color, label=fold)
            bottom.plot(h["epoch"], h["train_loss"], color=color, linestyle="--")
            bottom.plot(h["epoch"], h["valid_loss"], color=color)
        top.set_title(exp)
        top.set_ylabel("valid accuracy")
        top.legend(fontsize=8)
        bottom.set_ylabel("loss (solid valid, dashed train)")
        bottom.set_xlabel("epoch")
        bottom.set_yscale("log")
    save(fig, path)


def candidates(rows: list[dict], path: Path) -> None:
    """OOF score (the competition's metric) per candidate with its bootstrap 95% interval; ensembles orange, single
    models blue."""
    rows = rows[::-1]
    name = rows[0].get("metric", "accuracy")
    score = np.array([r["log_loss"] if name == "log_loss" else r.get("score", r["accuracy"]) for r in rows])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    err = np.clip([score - [r["ci_low"] for r in rows], [r["ci_high"] for r in rows] - score], 0, None)
    colors = ["tab:blue" if r["method"] == "single" else "tab:orange" for r in rows]
    ax.barh([r["candidate"] for r in rows], score, xerr=err, color=colors, capsize=3)
    for y, (r, value) in enumerate(zip(rows, score)):
        ax.text(r["ci_high"], y, f" {value:.4f}" + (" *" if r["significant"] else ""), va="center", fontsize=8)
    lo, hi = min(r["ci_low"] for r in rows), max(r["ci_high"] for r in rows)
    if name == "log_loss":
        ax.set_xlim(0, hi * 1.2)
    else:
        ax.set_xlim(max(0.0, lo - (1 - lo) * 0.5), 1.0 + (1 - lo) * 0.15)
    ax.set_xlabel(f"nested-CV OOF {name}, 95% bootstrap CI (* = significant vs best single)")
    ax.set_title("Candidates on identical OOF rows (blue: single model, orange: ensemble)", fontsize=10)
    save(fig, path)


def per_class(
    chosen: np.ndarray,
    single: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    chosen_name: str,
    single_name: str,
    path: Path,
) -> None:
    """Per-class OOF accuracy of the chosen blend and the best single model, classes sorted by the blend's accuracy."""
    acc = lambda p: np.array([(p.argmax(1)[labels == k] == k).mean() for k in range(len(classes))])  # noqa: E731
    a, b = acc(chosen), acc(single)
    order = np.argsort(a)
    fig, ax = plt.subplots(figsize=(min(3 + 0.35 * len(classes), 18), 3.5))
    x = np.arange(len(classes))
    ax.bar(x - 0.2, a[order], 0.4, label=chosen_name, color="tab:orange")
    ax.bar(x + 0.2, b[order], 0.4, label=single_name, color="tab:blue")
    if len(classes) <= 40:
        ax.set_xticks(x, [classes[i] for i in order], rotation=90)
    ax.set_ylim(max(0.0, min(a.min(), b.min()) - 0.05), 1.0)
    ax.set_ylabel("OOF accuracy")
    ax.legend(fontsize=8)
    ax.set_title("Per-class accuracy (worst classes first)")
    save(fig, path)


def confusion(probs: np.ndarray, labels: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    """Confusion matrix normalized by true class (each row sums to 1: recall on the diagonal), class names on both
    axes, values shown up to 20 classes."""
    size = min(4 + 0.45 * len(classes), 24)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels,
        probs.argmax(1),
        normalize="true",
        values_format=".2f",
        labels=np.arange(len(classes)),
        display_labels=classes,
        ax=ax,
        xticks_rotation="vertical",
        colorbar=False,
        cmap="Blues",
        include_values=len(classes) <= 20,
    )
    ax.set_title(title)
    save(fig, path)


def reliability(raw: dict[str, np.ndarray], calibrated: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> None:
    """Reliability diagram per model: accuracy vs confidence before and after temperature scaling."""
    fig, axes = plt.subplots(1, len(raw), figsize=(4.2 * len(raw), 4), squeeze=False)
    for ax, name in zip(axes[0], raw):
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect")
        for probs, label, color in (
            (raw[name], "raw", "tab:red"),
            (calibrated[name], "temperature-scaled", "tab:green"),
        ):
            conf, acc, count = reliability_curve(probs, labels)
            ax.plot(conf, acc, color=color, linewidth=1, label=f"{label} (ECE {metrics(probs, labels)['ece']:.3f})")
            ax.scatter(conf, acc, s=8 + 150 * count / count.sum(), color=color)  # area ~ share of rows in the bin
        ax.set_title(name)
        ax.set_xlabel("confidence (top probability); dot area = rows")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
    save(fig, path)


def accuracy_vs_models(rows: list[dict], probs: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> None:
    """Accuracy of the mean of calibrated probabilities of the k best single models, k = 1..M."""
    singles = sorted((r for r in rows if r["method"] == "single"), key=lambda r: -r["accuracy"])
    ks = range(1, len(singles) + 1)
    acc = [metrics(np.mean([probs[r["candidate"]] for r in singles[:k]], axis=0), labels)["accuracy"] for k in ks]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(list(ks), acc, marker="o")
    ax.set_xticks(list(ks))
    ax.set_xlabel("number of models (best first), mean of calibrated probabilities")
    ax.set_ylabel("OOF accuracy")
    ax.set_title("Accuracy vs ensemble size")
    save(fig, path)


GALLERY_CELL = (170, 190)  # px per thumbnail (width, height): its caption of up to 3 lines, then the picture
GALLERY_PICTURE = 140  # px: a thumbnail's longer side at most, enlarged by a whole factor (nearest) to stay sharp
GALLERY_HEAD = 30  # px above the grid for the figure's title


def gallery(images: list[np.ndarray], titles: list[str], path: Path, title: str, columns: int = 6) -> None:
    """Thumbnails in a grid, each under its caption (ids, labels, probabilities), placed as pixels on one figure
    (figimage and text) rather than in an Axes each: 0.44-0.65 s against 0.98-1.35 s for 36 thumbnails on the 2-core
    CPU (bench/bench_blend_speed.py)."""
    rows = max(1, -(-len(images) // columns))
    (cell_w, cell_h), head = GALLERY_CELL, GALLERY_HEAD
    width, height = columns * cell_w, head + rows * cell_h
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    fig.text(0.5, 1 - 8 / height, title, ha="center", va="top", fontsize=10)
    for i, (image, text) in enumerate(zip(images, titles)):
        row, col = divmod(i, columns)
        picture = sized_picture(image)
        top = height - head - row * cell_h  # pixels from the bottom, as the figure counts them
        caption_bottom = top - (cell_h - GALLERY_PICTURE) + 6
        x = col * cell_w + (cell_w - picture.shape[1]) // 2
        fig.figimage(picture, xo=x, yo=caption_bottom - 4 - picture.shape[0], origin="upper")
        fig.text((col + 0.5) * cell_w / width, caption_bottom / height, text, ha="center", va="bottom", fontsize=7)
    save(fig, path, tight=False)


def sized_picture(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (h, w, 3) of a gallery thumbnail (reporting.gallery.thumbnails has already resized it to THUMBNAIL
    px) enlarged by the largest whole factor that keeps its longer side within GALLERY_PICTURE: each source pixel a
    flat square, as imshow's nearest showed it."""
    picture = np.asarray(image, dtype=np.uint8)
    if picture.ndim == 2:
        picture = np.stack([picture] * 3, axis=-1)
    scale = max(1, GALLERY_PICTURE // max(picture.shape[:2]))
    return picture[..., :3].repeat(scale, axis=0).repeat(scale, axis=1)
