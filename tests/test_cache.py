"""Decoding into the uint8 cache: RGB, resize policy, reuse, and rebuild when the data changes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from foldwise.cache import cached_images, decode_image
from foldwise.errors import FoldwiseError


def test_grayscale_is_rgb_and_resized_by_shorter_side_then_center_crop(tmp_path):
    """A 20x10 grayscale image becomes (5, 5, 3): shorter side to 5, center crop of the long side."""
    arr = np.zeros((10, 20), dtype=np.uint8)
    arr[:, 5:15] = 255  # the center 10 columns are white
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = decode_image(tmp_path / "a.png", 5)
    assert out.shape == (5, 5, 3) and out.dtype == np.uint8
    assert out[:, 1:4].min() > 200  # center kept


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path):
    """Same files -> same .npy (not rewritten); a changed file -> a new cache with the new pixels."""
    paths = []
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), i * 50, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    cache = tmp_path / "cache"
    first = cached_images(paths, 4, cache, "train", workers=1)
    assert first.shape == (3, 4, 4, 3) and int(first[2, 0, 0, 0]) == 100
    (npy,) = cache.glob("*.npy")
    mtime = npy.stat().st_mtime_ns
    cached_images(paths, 4, cache, "train", workers=1)
    assert npy.stat().st_mtime_ns == mtime
    Image.fromarray(np.full((4, 4, 3), 7, dtype=np.uint8)).save(paths[2])
    os.utime(paths[2], ns=(mtime + 10**9, mtime + 10**9))
    second = cached_images(paths, 4, cache, "train", workers=1)
    assert int(second[2, 0, 0, 0]) == 7
    assert len(list(cache.glob("*.npy"))) == 2


def test_parallel_decode_equals_serial(tmp_path):
    """Worker processes give the same array as the single-process path."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(300):  # > one chunk, so the pool is used
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    serial = cached_images(paths, 6, tmp_path / "c1", "x", workers=1)
    parallel = cached_images(paths, 6, tmp_path / "c2", "x", workers=2)
    np.testing.assert_array_equal(serial, parallel)


def test_corrupt_image_names_the_file_and_leaves_no_cache(tmp_path):
    """A broken file is reported by path; no half-written cache is left for later stages to trust."""
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(FoldwiseError, match="bad.png"):
        cached_images([good, bad], 4, tmp_path / "cache", "train", workers=1)
    assert not list((tmp_path / "cache").glob("*.npy"))
