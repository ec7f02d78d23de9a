"""Blend and report speed: each figure a ratio against the way it was done before, run in the same process.

    python bench/bench_blend_speed.py            # QWK cut search, log-loss bootstrap, the loop's second report

- qwk_cuts: postprocess.fit_cuts (started from the labels' grade shares, coarse to fine) against the even grid it
  replaced (60 points across each gap, 3 passes, from the rounding points), on 3,000 synthetic grades: seconds and
  the QWK each reaches.
- log_loss bootstrap: metric_interval + paired_p resampling per-row terms against recomputing sklearn's log_loss on
  each of 200 resamples (the whole-set path every metric took before), 300 rows of 10 classes.
- report: write_report(reuse=True), as the loop's second report, against a full redraw, on the ordinal demo after
  `foldwise run` with a 1-epoch cpu-cnn (2 folds).
- gallery: plots.gallery of 36 thumbnails with 3-line captions (pixels and text on one figure) against the way it
  was drawn before, one matplotlib Axes per thumbnail (`axes_gallery` here, with the fixed caption margins that had
  replaced tight_layout).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from foldwise.blending import metrics as blend_metrics  # noqa: E402
from foldwise.blending.postprocess import cut_score, fit_cuts  # noqa: E402
from foldwise.metrics import metric  # noqa: E402


def timed(fn, *args, repeat: int = 3):
    """(best seconds of `repeat` calls of fn(*args), the last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def even_grid_cuts(probs: np.ndarray, labels: np.ndarray, scored) -> np.ndarray:
    """The search fit_cuts replaced: from 0.5, 1.5, ..., 3 passes of 58 inner points across each gap."""
    classes = probs.shape[1]
    cuts = np.arange(classes - 1) + 0.5
    for _ in range(3):
        for i in range(len(cuts)):
            low = cuts[i - 1] if i else 0.0
            high = cuts[i + 1] if i + 1 < len(cuts) else classes - 1.0
            best, best_score = cuts[i], cut_score(cuts, probs, labels, scored)
            for value in np.linspace(low, high, 60)[1:-1]:
                trial = cuts.copy()
                trial[i] = value
                if (score := cut_score(trial, probs, labels, scored)) > best_score:
                    best, best_score = value, score
            cuts[i] = best
    return cuts


def bench_qwk() -> None:
    scored = metric("qwk")
    for slope, offset, noise in [(0.6, 0.8, 0.5), (0.25, 2.5, 0.25), (1.0, 0.0, 0.8)]:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 5, 3000)
        centre = slope * labels + offset + rng.normal(0, noise, len(labels))
        probs = np.exp(-((np.arange(5)[None, :] - centre[:, None]) ** 2))
        probs /= probs.sum(1, keepdims=True)
        old_s, old = timed(even_grid_cuts, probs, labels, scored, repeat=1)
        new_s, new = timed(fit_cuts, probs, labels, scored, repeat=1)
        print(
            f"qwk_cuts grades {slope}*label+{offset}: even grid {old_s:.2f} s QWK "
            f"{cut_score(old, probs, labels, scored):.4f}; fit_cuts {new_s:.2f} s QWK "
            f"{cut_score(np.array(new), probs, labels, scored):.4f}; {old_s / new_s:.1f}x faster"
        )


def bench_log_loss() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    logits = rng.normal(size=(300, 10)) + 2.0 * np.eye(10)[labels]
    a = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    b = np.roll(a, 1, axis=0) * 0.3 + a * 0.7
    scored = metric("log_loss")

    def whole_set():
        values = []
        for i in blend_metrics.resamples(len(labels), blend_metrics.WHOLE_SET_BOOTSTRAPS, 0):
            values.append(scored(a[i], labels[i]))
            values.append(scored(a[i], labels[i]) - scored(b[i], labels[i]))
        return values

    old_s, _ = timed(whole_set, repeat=1)
    new_s, _ = timed(
        lambda: (blend_metrics.metric_interval(a, labels, scored), blend_metrics.paired_p(a, b, labels, scored))
    )
    ratio = old_s / new_s
    print(f"log_loss interval + paired test, 300 rows: whole-set {old_s:.2f} s, per-row {new_s:.3f} s; {ratio:.0f}x")


def bench_report() -> None:
    from foldwise.cli import main as foldwise
    from foldwise.data.formats import load_competition
    from foldwise.reporting.report import write_report
    from foldwise.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="foldwise-blend-speed-") as tmp:
        root = Path(tmp)
        foldwise(["demo", "ordinal", str(root / "input" / "ordinal")])
        comp_dir = root / "input" / "ordinal"
        foldwise(
            [
                "--quiet",
                "--root",
                str(root),
                "run",
                str(comp_dir),
                "-c",
                "cpu-cnn",
                "--k",
                "2",
                "--set",
                "optim.epochs=1",
            ]
        )
        ws, comp = Workspace(root), load_competition(root / "input" / "ordinal")
        full_s, _ = timed(lambda: write_report(ws, comp))
        reuse_s, _ = timed(lambda: write_report(ws, comp, reuse=True))
        print(f"report on the ordinal demo: full redraw {full_s:.2f} s, reuse {reuse_s:.2f} s; {full_s / reuse_s:.1f}x")


def axes_gallery(images: list[np.ndarray], titles: list[str], path: Path, title: str, columns: int = 6) -> None:
    """The baseline: the gallery as plots.gallery drew it before, an Axes per thumbnail with its caption as title."""
    import matplotlib.pyplot as plt

    from foldwise.reporting.plots import save

    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(text, fontsize=7)
    fig.suptitle(title, fontsize=10, y=1 - 0.08 / (2.4 * rows))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / (2.4 * rows), wspace=0.08, hspace=0.55)
    save(fig, path, tight=False)


def bench_gallery() -> None:
    from foldwise.reporting.plots import gallery

    images = list(np.random.default_rng(0).integers(0, 255, (36, 64, 64, 3), dtype=np.uint8))
    titles = [f"id{i:05d}\ntrue class {i % 10}\npred class {(i + 1) % 10} 0.{90 + i % 10}" for i in range(36)]
    with tempfile.TemporaryDirectory(prefix="foldwise-gallery-") as tmp:
        old_s, _ = timed(axes_gallery, images, titles, Path(tmp) / "old.png", "gallery")
        new_s, _ = timed(gallery, images, titles, Path(tmp) / "new.png", "gallery")
    print(f"gallery of 36 thumbnails: an Axes each {old_s:.2f} s, one figure {new_s:.2f} s; {new_s / old_s:.2f}")


if __name__ == "__main__":
    bench_qwk()
    bench_log_loss()
    bench_report()
    bench_gallery()
