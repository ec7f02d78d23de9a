"""Image galleries for the report, what a person looks at before trusting a blend: its most confident mistakes
(fastai's plot_top_losses is the model), test images that look like training images, side by side, and a few test
images per predicted class. Thumbnails are decoded from the images themselves, with the decode cache's policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from foldwise.blending.ensemble import FittedBlend
from foldwise.blending.submit import load_test_logits
from foldwise.data.cache import decode_image, resize_pil
from foldwise.data.competition import ArrayImages, Competition, ImageSource
from foldwise.errors import FoldwiseError
from foldwise.reporting import plots
from foldwise.workspace import Workspace

THUMBNAIL = 64  # px


def thumbnails(source: ImageSource, rows: list[int]) -> list[np.ndarray]:
    """uint8 (THUMBNAIL, THUMBNAIL, 3) pictures of these rows (a grey square where a file cannot be read)."""
    if isinstance(source, ArrayImages):
        from PIL import Image

        pixels = source.load()
        return [resize_pil(Image.fromarray(pixels[r]), THUMBNAIL) for r in rows]
    out = []
    for r in rows:
        try:
            out.append(decode_image(source[r], THUMBNAIL))
        except FoldwiseError:
            out.append(np.full((THUMBNAIL, THUMBNAIL, 3), 128, dtype=np.uint8))
    return out


NO_MISTAKES = "No OOF image is misclassified by the chosen blend."  # the text when no gallery is drawn


def confident_mistakes(comp: Competition, ids, probs: np.ndarray, labels: np.ndarray, out: Path, n: int = 18):
    """The chosen blend's wrong OOF rows with the highest predicted probability: image, truth, prediction, p."""
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return NO_MISTAKES
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:n]
    row_of = {id_: i for i, id_ in enumerate(comp.train_ids)}
    images = thumbnails(comp.train_images, [row_of[str(ids[i])] for i in wrong])
    names = comp.classes
    titles = [
        f"{ids[i]}\ntrue {names[labels[i]]}\npred {names[predicted[i]]} {probs[i, predicted[i]]:.2f}" for i in wrong
    ]
    plots.gallery(images, titles, out, "Most confident mistakes (OOF, chosen blend)")
    return (
        f"The {len(wrong)} misclassified OOF images the chosen blend was surest about "
        f"(of {int((predicted != labels).sum())} mistakes in {len(labels)} rows): label noise shows up here."
    )


def look_alikes(ws: Workspace, comp: Competition, out: Path) -> str | None:
    """Test images that look like a training image, each beside it (from the folds' duplicate search)."""
    sidecar = ws.folds_csv(comp.name).with_suffix(".json")
    pairs = json.loads(sidecar.read_text()).get("test_pairs", []) if sidecar.exists() else []
    if not pairs:
        return None
    train_row, test_row = {i: r for r, i in enumerate(comp.train_ids)}, {i: r for r, i in enumerate(comp.test_ids)}
    pairs = [p for p in pairs if p["train"] in train_row and p["test"] in test_row][:8]
    train = thumbnails(comp.train_images, [train_row[p["train"]] for p in pairs])
    test = thumbnails(comp.test_images, [test_row[p["test"]] for p in pairs])
    images = [im for pair in zip(train, test) for im in pair]
    how = ["identical" if p["exact"] else f"{p['distance']} bits apart" for p in pairs]
    titles = [t for p, h in zip(pairs, how) for t in (f"train {p['train']}", f"test {p['test']}\n{h}")]
    plots.gallery(images, titles, out, "Test images like training images (left: train, right: test)", columns=4)
    return f"{len(pairs)} of the test images that look like a training image, each beside it."


def test_examples(ws: Workspace, comp: Competition, fitted: FittedBlend, out: Path, per_class: int = 4) -> str:
    """A few test images per predicted class (the submission's blend), surest first, up to 12 classes."""
    logits = [load_test_logits(ws.comp_dir(comp.name) / m, comp.test_ids)[0] for m in fitted.models]
    probs = fitted.predict_proba(logits)
    predicted = probs.argmax(1)
    rows, titles = [], []
    for k in np.unique(predicted)[:12]:
        mine = np.flatnonzero(predicted == k)
        for r in mine[np.argsort(-probs[mine, k], kind="stable")][:per_class]:
            rows.append(int(r))
            titles.append(f"{comp.classes[k]} {probs[r, k]:.2f}")
    plots.gallery(
        thumbnails(comp.test_images, rows), titles, out, "Test images by predicted class", columns=per_class * 2
    )
    return "The test images the submission is surest about, a few per predicted class."
