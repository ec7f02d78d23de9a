"""CIFAR-10 / CIFAR-100 python pickles, as in the official tarballs (optionally in their extracted sub-directory).

CIFAR-10 (`cifar-10-batches-py/`): data_batch_1..5, test_batch, batches.meta (label_names).
CIFAR-100 (`cifar-100-python/`): train, test, meta (fine_label_names, coarse_label_names); fine labels unless
`cifar_labels: coarse` is set in `<comp>/foldwise.yaml`.
Each batch is a dict with byte keys: b"data" uint8 (N, 3072) rows of 1024 red, 1024 green, 1024 blue values
(row-major 32x32), b"labels" (CIFAR-10) or b"fine_labels" / b"coarse_labels" (CIFAR-100), b"filenames".
Images stay inside the pickles (ArrayImages); ids are `train_00000`... and `test_00000`... in file order,
class index = the official label number.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foldwise.data.competition import ArrayImages, Competition, shipped_solution
from foldwise.data.formats.common import TestSplit, choose_test_split, numbered_ids
from foldwise.data.options import competition_options
from foldwise.errors import FoldwiseError

SUBDIRS = ("", "cifar-10-batches-py", "cifar-100-python")  # the competition dir itself, or the tarball's folder

# What the official pickles (Python 2, numpy) refer to; a pickle naming anything else is refused, not executed.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays, lists, dicts and strings, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never does")
        return super().find_class(module, name)


def find_dir(root: Path) -> tuple[Path, int] | None:
    """(directory holding the pickles, 10 or 100), or None when no CIFAR files are there."""
    for sub in SUBDIRS:
        d = root / sub if sub else root
        if (d / "batches.meta").is_file() or (d / "data_batch_1").is_file():
            return d, 10
        if (d / "meta").is_file() and ((d / "train").is_file() or (d / "test").is_file()):
            return d, 100
    return None


def matches(root: Path) -> bool:
    """True when CIFAR-10 or CIFAR-100 pickles are in `root` or its cifar-10-batches-py/ / cifar-100-python/."""
    return find_dir(root) is not None


def load_pickle(path: Path) -> dict[bytes, object]:
    """The dict inside one CIFAR pickle, keys as bytes (str keys, from a re-pickled copy, are encoded)."""
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; extract the complete official CIFAR python tarball here.")
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        ImportError,
        OverflowError,
        MemoryError,
    ) as e:
        raise FoldwiseError(
            f"{path}: cannot read this CIFAR pickle, it is truncated or corrupt ({type(e).__name__}: {e}). "
            "Extract the official python tarball (cifar-10-python.tar.gz / cifar-100-python.tar.gz) again."
        ) from e
    if not isinstance(data, dict):
        raise FoldwiseError(f"{path}: holds a {type(data).__name__}, not a CIFAR batch dict; is it the right file?")
    return {k.encode() if isinstance(k, str) else k: v for k, v in data.items()}


def names(meta: dict, key: bytes, path: Path) -> tuple[str, ...]:
    """Class names stored under `key` in a meta pickle."""
    if key not in meta:
        raise FoldwiseError(f"{path}: has no {key.decode()!r}; it is not the CIFAR meta file. Extract it again.")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[key])


def batch_labels(batch: dict, key: bytes, path: Path, n_classes: int) -> np.ndarray:
    """Labels of one batch, checked against its image count and the number of classes."""
    if b"data" not in batch or key not in batch:
        raise FoldwiseError(
            f"{path}: has no {'data' if b'data' not in batch else key.decode()!r} entry; it is not "
            "a CIFAR batch of this kind. Extract the official tarball again."
        )
    labels = np.asarray(batch[key], dtype=np.int64)
    rows = np.shape(batch[b"data"])[0]
    if labels.ndim != 1 or len(labels) != rows:
        raise FoldwiseError(f"{path}: {rows} images but {len(labels)} labels; the file is damaged. Extract it again.")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise FoldwiseError(f"{path}: labels outside 0..{n_classes - 1}; it does not belong with its meta file.")
    return labels


def images_of(batch: dict, path: Path) -> np.ndarray:
    """uint8 (N, H, W, 3) view of a batch's b"data" rows (channel-planar CHW -> HWC)."""
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.dtype != np.uint8:
        raise FoldwiseError(f"{path}: b'data' is not a uint8 (N, 3072) array; the file is damaged. Extract it again.")
    side = int(round((data.shape[1] / 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise FoldwiseError(f"{path}: rows of {data.shape[1]} values are not 3 x side x side pixels.")
    return data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)


def array_images(paths: tuple[Path, ...], count: int, side: int) -> ArrayImages:
    """Images of the pickles `paths`, concatenated in order, unpickled only when the cache needs them."""

    def load() -> np.ndarray:
        parts = [images_of(load_pickle(p), p) for p in paths]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    return ArrayImages(paths, count, load, (side, side))


def read_split(paths: tuple[Path, ...], key: bytes, n_classes: int) -> tuple[np.ndarray, int]:
    """(labels of every image in `paths` in order, the images' side in px)."""
    batches = [(load_pickle(p), p) for p in paths]
    side = images_of(*batches[0]).shape[1]
    return np.concatenate([batch_labels(batch, key, p, n_classes) for batch, p in batches]), side


@dataclass(frozen=True)
class CifarFiles:
    """Which pickles hold what, for one CIFAR variant and label set."""

    classes: tuple[str, ...]
    label_key: bytes  # b"labels" (CIFAR-10), b"fine_labels" / b"coarse_labels" (CIFAR-100)
    train: tuple[Path, ...]
    test: Path
    detail: str  # for `foldwise describe`


def cifar10_files(root: Path, data_dir: Path, label_set: str) -> CifarFiles:
    """CIFAR-10: batches.meta, data_batch_1..5, test_batch (one label set)."""
    if label_set != "fine":
        raise FoldwiseError(
            f"{root / 'foldwise.yaml'}: cifar_labels: {label_set} applies to CIFAR-100 only; "
            "CIFAR-10 has one label set. Remove the line."
        )
    meta_path = data_dir / "batches.meta"
    train_paths = tuple(sorted(data_dir.glob("data_batch_*"), key=lambda p: (len(p.name), p.name)))
    if not train_paths:
        raise FoldwiseError(f"{data_dir}: no data_batch_1..5; extract the complete CIFAR-10 tarball here.")
    where = "" if data_dir == root else f" in {data_dir.name}/"
    classes = names(load_pickle(meta_path), b"label_names", meta_path)
    return CifarFiles(classes, b"labels", train_paths, data_dir / "test_batch", f"CIFAR-10 python pickles{where}")


def cifar100_files(root: Path, data_dir: Path, label_set: str) -> CifarFiles:
    """CIFAR-100: meta, train, test; fine or coarse labels."""
    meta_path = data_dir / "meta"
    classes = names(load_pickle(meta_path), f"{label_set}_label_names".encode(), meta_path)
    other = "coarse" if label_set == "fine" else "fine"
    where = "" if data_dir == root else f" in {data_dir.name}/"
    detail = (
        f"CIFAR-100 python pickles{where}, {label_set} labels ({len(classes)} classes; "
        f"`cifar_labels: {other}` in {root.name}/foldwise.yaml switches)"
    )
    return CifarFiles(classes, f"{label_set}_labels".encode(), (data_dir / "train",), data_dir / "test", detail)


def read(root: Path, options: dict[str, str] | None = None) -> Competition:
    """Read CIFAR-10 or CIFAR-100; the official test split is the test set, its labels the solution key."""
    found = find_dir(root)
    if found is None:
        raise FoldwiseError(
            f"{root}: no CIFAR pickles (batches.meta + data_batch_*, or meta + train + test) here "
            f"or in {' / '.join(SUBDIRS[1:])}/."
        )
    data_dir, variant = found
    label_set = (competition_options(root) if options is None else options).get("cifar_labels", "fine")
    files = (cifar10_files if variant == 10 else cifar100_files)(root, data_dir, label_set)
    classes = files.classes
    train_labels, train_side = read_split(files.train, files.label_key, len(classes))
    test_labels, test_side = read_split((files.test,), files.label_key, len(classes))
    split = TestSplit(
        f"CIFAR-{variant} {files.test.name}",
        numbered_ids("test", len(test_labels)),
        array_images((files.test,), len(test_labels), test_side),
        tuple(classes[i] for i in test_labels),
    )
    fmt, test, notes = choose_test_split(root, classes, [split])
    return Competition(
        name=root.name,
        root=root,
        layout="cifar",
        classes=classes,
        train_ids=numbered_ids("train", len(train_labels)),
        train_labels=tuple(int(i) for i in train_labels),
        train_images=array_images(files.train, len(train_labels), train_side),
        test_ids=test.ids,
        test_images=test.images,
        submission=fmt,
        solution_path=shipped_solution(root),
        solution_labels=test.labels,
        layout_detail=files.detail,
        test_description=test.description(),
        notes=tuple(notes),
    )
