"""Build demo competitions in the Kaggle csv layout from real data that ships offline.

foldwise demo digits input/digits                 # sklearn's 1,797 bundled 8x8 digits
foldwise demo fashion-mnist input/fashion-mnist   # Debian's dataset-fashion-mnist IDX files
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from foldwise.data.formats.idx import FASHION_MNIST_CLASSES, find_idx, read_idx
from foldwise.errors import FoldwiseError
from foldwise.progress import progress

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Shape:
    """How a demo competition's csvs look beyond `id,label`: the label column, what the sample holds, extra train.csv
    columns (e.g. a group per image) and the foldwise.yaml that names its metric."""

    label_column: str = "label"
    sample_value: str | None = None  # the sample's placeholder; None = the first class
    train_columns: dict = field(default_factory=dict)  # column -> one value per training image
    options: str = ""  # foldwise.yaml text


def write_competition(out: Path, train: tuple, test: tuple, classes, prefix: str, shape: Shape = Shape()) -> Path:
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
            frames[split] = pd.DataFrame({"id": ids, shape.label_column: [classes[i] for i in labels]})
        frames["train"].assign(**shape.train_columns).to_csv(tmp / "train.csv", index=False)
        frames["test"].to_csv(tmp / "solution.csv", index=False)
        placeholder = classes[0] if shape.sample_value is None else shape.sample_value
        frames["test"].assign(**{shape.label_column: placeholder}).to_csv(tmp / "sample_submission.csv", index=False)
        if shape.options:
            (tmp / "foldwise.yaml").write_text(shape.options)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 digits as uint8 8x8 images (0-16 scaled to 0-255) and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def split(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a stratified train / test split."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed)


def build_binary(out: Path, positives: float = 0.05, seed: int = 0) -> Path:
    """An imbalanced binary competition: digit 3 against every other digit, the 3s thinned to `positives` of all
    images, scored by ROC-AUC and submitted as `id,target` with the positive class's probability."""
    images, digits = digit_images()
    rng = np.random.default_rng(seed)
    threes, others = np.flatnonzero(digits == 3), np.flatnonzero(digits != 3)
    keep = rng.choice(threes, size=round(positives * len(others) / (1 - positives)), replace=False)
    rows = np.sort(np.r_[others, keep])
    images, labels = images[rows], (digits[rows] == 3).astype(int)
    train, test = split(labels, seed=seed)
    shape = Shape(label_column="target", sample_value="0.5", options="metric: roc_auc\n")
    return write_competition(out, (images[train], labels[train]), (images[test], labels[test]), ["0", "1"], "b", shape)


def build_ordinal(out: Path, seed: int = 0) -> Path:
    """An ordinal competition: the digits 0-4 as grades 0-4, scored by quadratic weighted kappa (as APTOS was)."""
    images, digits = digit_images()
    rows = np.flatnonzero(digits <= 4)
    train, test = split(digits[rows], seed=seed)
    shape = Shape(label_column="grade", options="metric: qwk\nlabel_column: grade\n")
    grades = [str(g) for g in range(5)]
    return write_competition(
        out, (images[rows[train]], digits[rows[train]]), (images[rows[test]], digits[rows[test]]), grades, "o", shape
    )


def build_grouped(out: Path, copies: int = 4, seed: int = 0) -> Path:
    """A grouped competition: every training image comes as `copies` near-identical augmented copies (brightness and
    pixel noise) sharing a `group`; ungrouped folds put copies on both sides of a split and leak. The digits are
    buried in heavy noise first, so a model cannot score near 100% and memorizing a copy's noise shows."""
    images, digits = digit_images()
    rng = np.random.default_rng(seed)
    images = np.clip(images.astype(int) + rng.normal(0, 90, images.shape), 0, 255).astype(np.uint8)
    train, test = split(digits, seed=seed)
    noisy = [
        np.clip(images[r].astype(int) * rng.uniform(0.9, 1.1) + rng.integers(-12, 13, images[r].shape), 0, 255)
        for r in np.repeat(train, copies)
    ]
    shape = Shape(train_columns={"group": [f"g{r}" for r in np.repeat(train, copies)]}, options="group_column: group\n")
    classes = [str(c) for c in range(10)]
    stacked = np.stack(noisy).astype(np.uint8)
    return write_competition(
        out, (stacked, np.repeat(digits[train], copies)), (images[test], digits[test]), classes, "g", shape
    )


def build_digits(out: Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """sklearn's digits: 8x8 images (0-16 scaled to 0-255), stratified 80/20 into labeled train and unlabeled test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digit_images()[0]
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


DEMOS = {
    "digits": build_digits,
    "fashion-mnist": build_fashion_mnist,
    "binary": build_binary,
    "ordinal": build_ordinal,
    "grouped": build_grouped,
}
