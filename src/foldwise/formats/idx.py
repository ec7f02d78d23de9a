"""MNIST / Fashion-MNIST IDX files (`*-images-idx3-ubyte[.gz]`, `*-labels-idx1-ubyte[.gz]`)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from foldwise.errors import FoldwiseError

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
