"""Decode every image once into a uint8 NHWC array on disk, memory-mapped by every later stage.

Policy: every image becomes 3-channel RGB (grayscale, palette and RGBA are converted), and an image
whose size differs from the recipe's `image_size` is resized so its shorter side fits, then
center-cropped to a square. The same policy is applied to train and test, so they never mismatch.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from foldwise.data.competition import ArrayImages, ImageSource
from foldwise.data.content import fingerprint
from foldwise.data.images import open_image
from foldwise.errors import FoldwiseError
from foldwise.fileio import atomic_path, exclusive
from foldwise.progress import progress
from foldwise.workers import default_workers

CHUNK = 256  # images per worker task
LARGE = 4096 * 4096  # px: images past this are decoded reduced (see reduced); smaller ones exactly as before


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB, the way an image viewer shows it.

    - 16-bit grayscale ("I;16", "I;16B", ...) and 32-bit "I" (how decoders hand over 16-bit data) keep their top 8
      bits (value >> 8): PIL's own convert clips every value above 255 to white.
    - Transparency (RGBA, LA, PA, palette with a transparent index) is composited on white, not dropped: the color
      under a transparent pixel is arbitrary (often black), while viewers and Kaggle's previews show white.
    - Grayscale, bilevel, palette, CMYK and YCbCr use PIL's conversion.
    """
    if im.mode == "RGB":
        return im  # the common case; convert() would copy it
    if im.mode == "I" or im.mode.startswith("I;16"):
        im = Image.fromarray((np.clip(np.asarray(im), 0, 65535).astype(np.uint32) >> 8).astype(np.uint8))
    if "A" in im.getbands() or "a" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return im.convert("RGB")


def resize_pil(im: Image.Image, size: int) -> np.ndarray:
    """RGB (see to_rgb), shorter side resized to `size` (bicubic), center crop to size x size; uint8 (size, size, 3)."""
    im = to_rgb(im)
    if im.size != (size, size):
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)


def reduced(im: Image.Image, size: int) -> Image.Image:
    """A large image shrunk to no less than twice `size` on its shorter side before resizing: JPEGs while decoding
    (draft mode decodes at 1/2, 1/4 or 1/8 scale), other formats right after (Image.reduce, a box filter)."""
    factor = max(1, min(im.size) // (2 * size))
    if factor == 1:
        return im
    if im.format == "JPEG":
        im.draft("RGB", (im.width // factor, im.height // factor))
        return im
    try:
        return im.reduce(factor)
    except ValueError:  # a mode reduce does not take (palette, 1-bit): convert first
        return to_rgb(im).reduce(factor)


def decode_image(path: Path, size: int) -> np.ndarray:
    """One image file -> (size, size, 3) uint8, shorter side resized then center-cropped; an image over LARGE pixels
    is decoded reduced, one over PIXEL_CAP refused (images.open_image)."""
    with open_image(path) as im:
        try:
            return resize_pil(reduced(im, size) if im.width * im.height > LARGE else im, size)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise FoldwiseError(f"{path}: cannot decode this image ({e}). Replace or remove the file.") from e


def _decode_into(out: np.ndarray, start: int, paths: list[Path], size: int) -> list[str]:
    """Decode `paths` into out[start:]; a file that fails leaves its row as it was and adds its message."""
    failed = []
    for i, p in enumerate(paths):
        try:
            out[start + i] = decode_image(p, size)
        except FoldwiseError as e:
            failed.append(str(e))
    return failed


def _decode_chunk(args: tuple[list[Path], int]) -> tuple[np.ndarray, list[str]]:
    """Worker task: decoded images of one chunk (zeros where a file failed) and the failures' messages."""
    paths, size = args
    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    return out, _decode_into(out, 0, paths, size)


def _decode_chunk_into(args: tuple[str, int, tuple[int, ...], int, list[Path]]) -> tuple[int, list[str]]:
    """Worker task: decode one chunk straight into the shared output file (no pixels pickled back)."""
    filename, offset, shape, start, paths = args
    out = np.memmap(filename, dtype=np.uint8, mode="r+", offset=offset, shape=shape)
    failed = _decode_into(out, start, paths, shape[1])
    del out  # unmaps; the pages are the parent's file pages, flushed by it
    return len(paths), failed


def cache_key(source: ImageSource, size: int, cache_dir: Path, split: str) -> str:
    """The images' content fingerprint (content.py) and the target size: any change to the pixels, even one that
    keeps a file's size and modification time, gives a new cache file."""
    return hashlib.sha256(f"v2 size={size} {fingerprint(source, cache_dir, split)}".encode()).hexdigest()[:16]


def _copied_back(out: np.ndarray, chunks, results):
    """(count, errors) per chunk, copying each chunk's pixels returned by a worker into `out`."""
    for (start, _), (batch, errors) in zip(chunks, results):
        out[start : start + len(batch)] = batch
        yield len(batch), errors


def decode_images(paths: Sequence[Path], size: int, out: np.ndarray, desc: str, workers: int) -> None:
    """Fill `out` with decoded images, in parallel worker processes when there are enough of them.

    When `out` is a file-backed memory map (the cache), workers write their chunks straight into the file's
    pages and send back only error messages; otherwise they return each chunk's pixels.
    """
    chunks = [(start, list(paths[start : start + CHUNK])) for start in range(0, len(paths), CHUNK)]
    bar = progress(total=len(paths), desc=desc, unit="img")
    failed: list[str] = []
    pool = None
    try:
        if workers <= 1 or len(chunks) <= 1:
            results = ((len(chunk), _decode_into(out, start, chunk, size)) for start, chunk in chunks)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            if isinstance(out, np.memmap) and isinstance(out.base, mmap.mmap) and out.mode in ("r+", "w+"):
                tasks = [(str(out.filename), out.offset, out.shape, start, chunk) for start, chunk in chunks]
                results = pool.map(_decode_chunk_into, tasks)
            else:
                results = _copied_back(out, chunks, pool.map(_decode_chunk, [(chunk, size) for _, chunk in chunks]))
        for n, errors in results:
            failed += errors
            bar.update(n)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if failed:  # every broken file at once, not one per run
        shown = "\n  ".join(failed[:10]) + (f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise FoldwiseError(f"{len(failed)} image(s) cannot be decoded; replace or remove them:\n  {shown}")


def resize_array_images(source: ArrayImages, size: int, out: np.ndarray, desc: str) -> None:
    """Fill `out` from images held in arrays, applying the same RGB + resize policy as files."""
    images = source.load()
    if len(images) != len(source):
        raise FoldwiseError(f"{source.files[0]}: holds {len(images)} images, expected {len(source)}.")
    for i in progress(range(len(images)), desc=desc, unit="img"):
        im = images[i]
        if im.shape[:2] == (size, size) and im.ndim == 3 and im.shape[2] == 3:
            out[i] = im
        else:
            out[i] = resize_pil(Image.fromarray(im), size)


def cached_images(source: ImageSource, size: int, cache_dir: Path, split: str, workers: int | None = None):
    """(N, size, size, 3) uint8 array for `source`, decoded once and memory-mapped from `cache_dir`."""
    path = Path(cache_dir) / f"{split}-{size}px-{cache_key(source, size, cache_dir, split)}.npy"
    if not path.exists():
        with exclusive(path):  # another process may be decoding the same data: wait, then use its file
            if not path.exists():
                _write_cache(source, size, path, split, workers)
    # Copy-on-write map: torch can wrap it without a copy (a read-only map would need one), and the file is never
    # modified, so a 100k x 64x64x3 cache is never held twice in RAM.
    return np.load(path, mmap_mode="c")


def _write_cache(source: ImageSource, size: int, path: Path, split: str, workers: int | None) -> None:
    """Decode `source` into the .npy at `path`, atomically (no half-written cache is ever left)."""
    workers = workers or default_workers()
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(source), size, size, 3))
        desc = f"decode {split} {size}px"
        if isinstance(source, ArrayImages):
            resize_array_images(source, size, out, desc)
        else:
            decode_images(source, size, out, desc=desc, workers=workers)
        out.flush()
        del out
