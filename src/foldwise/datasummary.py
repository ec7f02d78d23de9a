"""Facts about a competition's images for the report: sizes and modes (sampled) and exact duplicate files."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image


def image_stats(paths: tuple[Path, ...], sample: int = 200, seed: int = 0) -> dict:
    """Most common (width x height) sizes and PIL modes among a seeded sample of image headers."""
    rng = np.random.default_rng(seed)
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), size=min(sample, len(paths)), replace=False))]
    sizes, modes = Counter(), Counter()
    for p in chosen:
        with Image.open(p) as im:  # reads the header only
            sizes[f"{im.width}x{im.height}"] += 1
            modes[im.mode] += 1
    show = lambda c: ", ".join(f"{k} ({n})" for k, n in c.most_common(4))  # noqa: E731
    return {"sampled": len(chosen), "sizes": show(sizes), "modes": show(modes)}


def file_digest(path: Path) -> str:
    """SHA-1 of a file's bytes (identity, not security)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def exact_duplicates(train: tuple[Path, ...], test: tuple[Path, ...]) -> dict:
    """Groups of byte-identical training files, and test files identical to some training file."""
    train_hashes = Counter(file_digest(p) for p in train)
    groups = sum(1 for n in train_hashes.values() if n > 1)
    overlap = sum(1 for p in test if file_digest(p) in train_hashes)
    return {"train_groups": groups, "train_test": overlap}
