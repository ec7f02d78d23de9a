"""Decoding into the uint8 cache: RGB, resize policy, reuse, and rebuild when the data changes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from foldwise.data.cache import cached_images, decode_image, decode_images
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
    parallel = cached_images(paths, 6, tmp_path / "c2", "x", workers=2)  # workers write into the cache file
    np.testing.assert_array_equal(serial, parallel)
    in_ram = np.zeros_like(serial)
    decode_images(paths, 6, in_ram, "x", workers=2)  # workers send pixels back
    np.testing.assert_array_equal(serial, in_ram)


def test_parallel_decode_reports_every_broken_file(tmp_path):
    """Failures found by worker processes (in different chunks) come back together, by path; no cache is left."""
    paths = []
    for i in range(600):
        Image.fromarray(np.full((4, 4, 3), i % 255, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    for i in (3, 450):
        paths[i].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(FoldwiseError, match=r"2 image\(s\)(.|\n)*3\.png(.|\n)*450\.png"):
        cached_images(paths, 4, tmp_path / "cache", "train", workers=2)
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_corrupt_image_names_the_file_and_leaves_no_cache(tmp_path):
    """A broken file is reported by path; no half-written cache is left for later stages to trust."""
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(FoldwiseError, match="bad.png"):
        cached_images([good, bad], 4, tmp_path / "cache", "train", workers=1)
    assert not list((tmp_path / "cache").glob("*.npy"))


def decoded(im: Image.Image, path) -> np.ndarray:
    """Save `im` (format from the file name), decode it through the cache's path at its own size."""
    im.save(path)
    with Image.open(path) as back:
        assert back.mode == im.mode, f"{path.suffix} did not keep mode {im.mode}"
    return decode_image(path, im.width)


def test_grayscale_and_bilevel_become_equal_rgb_channels(tmp_path):
    """L and 1 modes: every channel equals the gray value."""
    gray = np.array([[0, 77], [200, 255]], dtype=np.uint8)
    out = decoded(Image.fromarray(gray), tmp_path / "l.png")
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    out = decoded(Image.fromarray(gray).convert("1"), tmp_path / "b.png")
    assert set(np.unique(out)) <= {0, 255} and out[1, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16B", ".tif"), ("I", ".tif")])
def test_16_bit_grayscale_keeps_the_top_8_bits_instead_of_clipping(mode, suffix, tmp_path):
    """16-bit data is scaled (>> 8): 4096 -> 16, 65535 -> 255; PIL's plain convert would make 256.. all white."""
    values = np.array([[0, 256], [4096, 65535]])
    if mode == "I":
        im = Image.fromarray(values.astype(np.int32))
    else:
        im = Image.frombytes(mode, (2, 2), values.astype(">u2" if mode.endswith("B") else "<u2").tobytes())
    out = decoded(im, tmp_path / f"g{suffix}")
    np.testing.assert_array_equal(out[..., 0], [[0, 1], [16, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_rgba_and_la_are_composited_on_white(tmp_path):
    """Transparent -> white, opaque -> the color, half -> the blend (not the color under the alpha)."""
    rgba = np.array([[[200, 0, 0, 0], [200, 0, 0, 255]], [[0, 0, 100, 128], [10, 20, 30, 255]]], dtype=np.uint8)
    out = decoded(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png").astype(int)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [200, 0, 0] and out[1, 1].tolist() == [10, 20, 30]
    np.testing.assert_allclose(out[1, 0], [127, 127, 177], atol=1)
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    out = decoded(la, tmp_path / "la.png")
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [200, 200, 200]


def test_palette_with_and_without_transparency(tmp_path):
    """P: palette colors exactly; the transparent index (tRNS) becomes white."""
    im = Image.new("P", (2, 2))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 128, 255] + [0] * 759)
    im.putdata([0, 1, 2, 1])
    out = decoded(im, tmp_path / "p.png")
    assert out.reshape(4, 3).tolist() == [[0, 0, 0], [255, 0, 0], [0, 128, 255], [255, 0, 0]]
    im.info["transparency"] = 0
    out = decoded(im, tmp_path / "pt.png")
    assert out.reshape(4, 3).tolist() == [[255, 255, 255], [255, 0, 0], [0, 128, 255], [255, 0, 0]]
    gif = decoded(im, tmp_path / "pt.gif")
    assert gif[0, 0].tolist() == [255, 255, 255] and gif[0, 1].tolist() == [255, 0, 0]


def test_cmyk_becomes_rgb(tmp_path):
    """CMYK: no ink -> white, cyan -> (0, 255, 255), full black -> black, half black -> mid grey."""
    im = Image.new("CMYK", (2, 2))
    im.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 128)])
    out = decoded(im, tmp_path / "c.tif").reshape(4, 3).astype(int)
    assert out[:3].tolist() == [[255, 255, 255], [0, 255, 255], [0, 0, 0]]
    np.testing.assert_allclose(out[3], [127, 127, 127], atol=1)


def test_cache_is_wrapped_by_torch_without_a_copy(tmp_path):
    """The memory-mapped cache becomes a tensor sharing its memory: a large dataset is never held twice in RAM."""
    import torch

    for i in range(2):
        Image.fromarray(np.full((4, 4, 3), i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    images = cached_images([tmp_path / "0.png", tmp_path / "1.png"], 4, tmp_path / "cache", "train", workers=1)
    assert isinstance(images, np.memmap)
    tensor = torch.from_numpy(images)
    assert tensor.data_ptr() == images.ctypes.data and int(tensor[1, 0, 0, 0]) == 1


def _cache_in_child(args):
    paths, cache = args
    return np.array(cached_images(paths, 4, cache, "train", workers=1)).sum()


def test_processes_building_the_same_cache_take_turns(tmp_path, monkeypatch):
    """Two processes (parallel folds, DDP ranks) asking for the same missing cache: one decodes, the other waits
    for its lock and maps the finished file."""
    import multiprocessing
    import time

    from foldwise.data import cache as cache_module

    paths = []
    for i in range(20):
        Image.fromarray(np.full((4, 4, 3), i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    log, real = tmp_path / "builds.log", cache_module._write_cache

    def slow_write(*args):
        with open(log, "a") as f:
            f.write("build\n")
        time.sleep(1.0)  # long enough that the other process arrives while this one builds
        real(*args)

    monkeypatch.setattr(cache_module, "_write_cache", slow_write)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        sums = pool.map(_cache_in_child, [(paths, tmp_path / "cache")] * 2)
    assert log.read_text() == "build\n" and sums[0] == sums[1] == sum(range(20)) * 48
