"""Build demo competitions in the Kaggle csv layout from real data that ships offline.

foldwise demo digits input/digits                 # sklearn's 1,797 bundled 8x8 digits
foldwise demo fashion-mnist input/fashion-mnist   # Debian's dataset-fashion-mnist IDX files
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from foldwise.data.formats.idx import FASHION_MNIST_CLASSES, find_idx, read_idx
from foldwise.errors import FoldwiseError
from foldwise.progress import progress

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_competition(out: Path, train: tuple, test: tuple, classes, prefix: str) -> Path:
    """Write train.csv, train/<id>.png, test/<id>.png, sample_submission.csv and solution.csv into `out`.

    `train`/`test` are (images uint8 (N,H,W), label indices). Built in a temp dir and renamed, so a killed run
    leaves nothing half-written; an existing non-empty `out` is never touched.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FoldwiseError(f"{out}: already exists and is not empty; remove it or choose another directory.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        frames = {}
        for split, (images, labels) in (("train", train), ("test", test)):
            (tmp / split).mkdir()
            ids = [f"{prefix}{split}_{i:05d}" for i in range(len(images))]
            for id_, image in progress(list(zip(ids, images)), desc=f"write {split}", unit="img"):
                Image.fromarray(image).save(tmp / split / f"{id_}.png")
            frames[split] = pd.DataFrame({"id": ids, "label": [classes[i] for i in labels]})
        frames["train"].to_csv(tmp / "train.csv", index=False)
        frames["test"].to_csv(tmp / "solution.csv", index=False)
        frames["test"].assign(label=classes[0]).to_csv(tmp / "sample_submission.csv", index=False)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_digits(out: Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """sklearn's digits: 8x8 images (0-16 scaled to 0-255), stratified 80/20 into labeled train and unlabeled test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    classes = [str(c) for c in range(10)]
    return write_competition(
        out, (images[idx_train], digits.target[idx_train]), (images[idx_test], digits.target[idx_test]), classes, "d"
    )


def build_fashion_mnist(out: Path, source: Path | None = None) -> Path:
    """Fashion-MNIST: 60k labeled train, the official 10k test as the unlabeled test set (labels -> solution.csv)."""
    source = Path(source) if source else FASHION_MNIST_DIR
    try:
        arrays = {
            name: read_idx(find_idx(source, f"{name}-idx{3 if 'images' in name else 1}-ubyte"))
            for name in ("train-images", "train-labels", "t10k-images", "t10k-labels")
        }
    except FileNotFoundError as e:
        raise FoldwiseError(
            f"{e.args[0]}: Fashion-MNIST IDX file not found. Install Debian's package "
            "(`apt-get install dataset-fashion-mnist`, files in /usr/share/datasets/fashion-mnist) or pass "
            "--source DIR with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*."
        ) from e
    train = (arrays["train-images"], arrays["train-labels"].astype(np.int64))
    test = (arrays["t10k-images"], arrays["t10k-labels"].astype(np.int64))
    return write_competition(out, train, test, FASHION_MNIST_CLASSES, "f")


DEMOS = {"digits": build_digits, "fashion-mnist": build_fashion_mnist}
