"""MNIST / Fashion-MNIST IDX files (`*-images-idx3-ubyte[.gz]`, `*-labels-idx1-ubyte[.gz]`), and the idx layout.

Layout: train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] (labeled), t10k-images-idx3-ubyte[.gz]
(+ t10k-labels-idx1-ubyte[.gz], kept aside as the solution key) directly in the competition directory.
Images stay in the files (ArrayImages); ids are train_00000... / test_00000... in file order; classes "0".."9"
(Fashion-MNIST's names when the competition directory's name contains "fashion").
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from foldwise.data.competition import ArrayImages, Competition, shipped_solution
from foldwise.data.formats.common import TestSplit, choose_test_split, numbered_ids
from foldwise.errors import FoldwiseError

FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def find_idx(directory: Path, stem: str) -> Path:
    """`stem` or `stem.gz` inside directory."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(directory / stem)


def read_idx(path: Path) -> np.ndarray:
    """Array stored in an IDX file (gzip-compressed or not)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise FoldwiseError(f"{path}: cannot read this IDX file ({e}); download it again.") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in DTYPES:
        raise FoldwiseError(f"{path}: not an IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise FoldwiseError(
            f"{path}: truncated IDX file ({len(data) - offset} of {expected} bytes); download it again."
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


# ---- the idx layout: MNIST / Fashion-MNIST files directly in the competition directory ----

SPLIT_FILES = {  # canonical names, then the dotted spelling of some mirrors (train-images.idx3-ubyte)
    "train-images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "t10k-images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "t10k-labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_split_file(root: Path, kind: str) -> Path | None:
    """The file of `kind` (e.g. "train-images") in root, plain or .gz, or None."""
    for stem in SPLIT_FILES[kind]:
        try:
            return find_idx(root, stem)
        except FileNotFoundError:
            continue
    return None


def matches(root: Path) -> bool:
    """True when train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] are in root."""
    return find_split_file(root, "train-images") is not None and find_split_file(root, "train-labels") is not None


def read_header(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) from an IDX header, without reading the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in DTYPES:
                raise FoldwiseError(f"{path}: not an IDX file (bad magic number).")
            dims = f.read(4 * head[3])
    except (OSError, EOFError) as e:
        raise FoldwiseError(f"{path}: cannot read this IDX file ({e}); download it again.") from e
    if len(dims) != 4 * head[3]:
        raise FoldwiseError(f"{path}: truncated IDX header; download it again.")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(head[3]))
    return np.dtype(DTYPES[head[2]]), shape


def image_count(path: Path) -> int:
    """Number of images in an IDX image file, checked to be uint8 (N, H, W) or (N, H, W, 3)."""
    dtype, shape = read_header(path)
    if dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 3):
        raise FoldwiseError(f"{path}: holds {dtype} {shape}, not uint8 images (N, H, W); is it an images file?")
    return shape[0]


def read_labels(path: Path, images: Path, count: int) -> np.ndarray:
    """Labels (int64) of an IDX labels file, which must hold one label per image of `images`."""
    labels = read_idx(path)
    if labels.ndim != 1:
        raise FoldwiseError(f"{path}: holds an array of shape {labels.shape}, not one label per image.")
    if len(labels) != count:
        raise FoldwiseError(
            f"{images}: holds {count} images but {path} holds {len(labels)} labels; the two files do not belong "
            "together (different downloads, or one is truncated). Download both again."
        )
    if len(labels) and labels.min() < 0:
        raise FoldwiseError(f"{path}: negative labels; it is not an MNIST-style labels file.")
    return labels.astype(np.int64)


def array_images(path: Path, count: int) -> ArrayImages:
    """The images of one IDX file, read only when the cache needs them."""

    def load() -> np.ndarray:
        images = read_idx(path)
        if len(images) != count:
            raise FoldwiseError(f"{path}: holds {len(images)} images, its header said {count}; download it again.")
        return images

    return ArrayImages((path,), count, load, read_header(path)[1][1:3])


def read(root: Path, options: dict[str, str] | None = None) -> Competition:
    """Read MNIST-style IDX files: train-* is the labeled set, t10k-* the test set (labels -> solution key)."""
    files = {kind: find_split_file(root, kind) for kind in SPLIT_FILES}
    for kind in ("train-images", "train-labels", "t10k-images"):
        if files[kind] is None:
            raise FoldwiseError(f"{root}: {SPLIT_FILES[kind][0]}[.gz] is missing; put all four IDX files there.")
    n_train = image_count(files["train-images"])
    train_labels = read_labels(files["train-labels"], files["train-images"], n_train)
    n_test = image_count(files["t10k-images"])
    test_labels = read_labels(files["t10k-labels"], files["t10k-images"], n_test) if files["t10k-labels"] else None
    top = int(max(train_labels.max(initial=0), test_labels.max(initial=0) if test_labels is not None else 0))
    fashion = "fashion" in root.name.lower() and top < 10
    if fashion:
        classes = tuple(FASHION_MNIST_CLASSES[: top + 1])
    else:
        classes = tuple(str(i) for i in range(top + 1))
    source = files["t10k-images"].name
    split = TestSplit(
        source + (f" + {files['t10k-labels'].name}" if test_labels is not None else ""),
        numbered_ids("test", n_test),
        array_images(files["t10k-images"], n_test),
        tuple(classes[i] for i in test_labels) if test_labels is not None else (),
    )
    fmt, test, notes = choose_test_split(root, classes, [split])
    names = "Fashion-MNIST class names (the directory name says fashion)" if fashion else "digit class names"
    return Competition(
        name=root.name,
        root=root,
        layout="idx",
        classes=classes,
        train_ids=numbered_ids("train", n_train),
        train_labels=tuple(int(i) for i in train_labels),
        train_images=array_images(files["train-images"], n_train),
        test_ids=test.ids,
        test_images=test.images,
        submission=fmt,
        solution_path=shipped_solution(root),
        solution_labels=test.labels,
        layout_detail=f"MNIST-style IDX files, {names}",
        test_description=test.description(),
        notes=tuple(notes),
    )
