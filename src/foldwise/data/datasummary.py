"""Facts about a competition's images for the report: sizes and modes (sampled) and exact duplicate files."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from foldwise.data.competition import ArrayImages
from foldwise.data.images import open_image
from foldwise.errors import FoldwiseError


def image_stats(paths, sample: int = 200, seed: int = 0) -> dict:
    """Most common (width x height) sizes and PIL modes among a seeded sample of image headers."""
    if isinstance(paths, ArrayImages):
        height, width = paths.image_shape
        return {
            "sampled": len(paths),
            "sizes": f"{width}x{height} (all)",
            "modes": "arrays in " + ", ".join(p.name for p in paths.files[:4]),
        }
    rng = np.random.default_rng(seed)
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), size=min(sample, len(paths)), replace=False))]
    sizes, modes = Counter(), Counter()
    for p in chosen:
        try:
            with open_image(p) as im:  # reads the header only
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
        except FoldwiseError:  # named by the decoder, with every other broken file
            sizes["unreadable"] += 1
    show = lambda c: ", ".join(f"{k} ({n})" for k, n in c.most_common(4))  # noqa: E731
    return {"sampled": len(chosen), "sizes": show(sizes), "modes": show(modes)}


def digests(source: ArrayImages) -> list[str]:
    """One digest per array-backed image (SHA-1 of its pixel bytes); files are digested by content.py."""
    return [hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in source.load()]


def exact_duplicates(train_digests: list[str], test_digests: list[str]) -> dict:
    """Groups of byte-identical training images, and test images identical to some training image."""
    train_hashes = Counter(train_digests)
    groups = sum(1 for n in train_hashes.values() if n > 1)
    overlap = sum(1 for d in test_digests if d in train_hashes)
    return {"train_groups": groups, "train_test": overlap}
