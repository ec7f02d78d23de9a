"""Per-image fingerprints for the duplicate search: perceptual hashes of 32 px thumbnails and content digests,
computed once per image set and cached beside the decode cache (keyed like it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foldwise.data.cache import cache_key, decode_images, resize_array_images
from foldwise.data.competition import ArrayImages, ImageSource
from foldwise.data.content import cached_file_digests, file_digests
from foldwise.data.datasummary import digests
from foldwise.data.phash import HASH_SIZE, perceptual_hashes
from foldwise.fileio import save_npz
from foldwise.workers import default_workers

HASH_VERSION = "phash-v1"  # in the fingerprint cache's file name: change it when the hash changes
BLOCK = 32768  # images decoded at a time (32 px RGB: ~100 MB)


def thumbnail_hashes(source: ImageSource, split: str, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """perceptual_hashes of every image of `source`, decoded (same RGB + resize policy as the cache) block by block."""
    size = HASH_SIZE
    if isinstance(source, ArrayImages):  # container arrays are loaded whole anyway
        thumbs = np.zeros((len(source), size, size, 3), dtype=np.uint8)
        resize_array_images(source, size, thumbs, desc=f"fingerprint {split}")
        return perceptual_hashes(thumbs)
    workers = workers or default_workers()
    hashes, detail = np.zeros(len(source), dtype=np.uint64), np.zeros(len(source))
    for start in range(0, len(source), BLOCK):  # decode a block, hash it, drop its pixels
        paths = source[start : start + BLOCK]
        thumbs = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
        decode_images(
            paths, size, thumbs, desc=f"fingerprint {split} {start + len(paths)}/{len(source)}", workers=workers
        )
        hashes[start : start + len(paths)], detail[start : start + len(paths)] = perceptual_hashes(thumbs)
    return hashes, detail


def fingerprints_path(source: ImageSource, cache_dir: Path, split: str) -> Path:
    """Where fingerprints() caches `source`'s hashes (keyed like the decode cache)."""
    return Path(cache_dir) / f"{HASH_VERSION}-{split}-{cache_key(source, HASH_SIZE, cache_dir, split)}.npz"


def cached_digests(source: ImageSource, cache_dir: Path, split: str) -> list[str] | None:
    """Per-image content digests already cached for this exact data (file digests from content.py, or an earlier
    fingerprints() call's pixel digests of array images), else None; no image is read."""
    if not isinstance(source, ArrayImages):
        return cached_file_digests(list(source), cache_dir, split)
    if cached_file_digests(list(source.files), cache_dir, split) is None:
        return None  # the containers' key would need reading them
    path = fingerprints_path(source, cache_dir, split)
    if not path.exists():
        return None
    with np.load(path) as f:
        return [str(d) for d in f["digests"]]


def fingerprints(source: ImageSource, cache_dir: Path, split: str, workers: int | None = None):
    """(pHashes, detail, content digests) of every image; cached in `cache_dir` under the decode cache's key."""
    path = fingerprints_path(source, cache_dir, split)
    if path.exists():
        with np.load(path) as f:
            return f["hashes"], f["detail"], [str(d) for d in f["digests"]]
    hashes, detail = thumbnail_hashes(source, split, workers)
    content = digests(source) if isinstance(source, ArrayImages) else file_digests(list(source), cache_dir, split)
    save_npz(path, hashes=hashes, detail=detail, digests=np.array(content, dtype="U40"))
    return hashes, detail, content
