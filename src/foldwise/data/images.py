"""Image files on disk: which files are images, listing a folder's images, opening them within a pixel cap, their
typical size, and the folder shapes Kaggle archives come in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from foldwise.data.competition import ArrayImages, ImageSource
from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
PIXEL_CAP = 16384 * 16384  # px: larger images are refused (one decoded as RGB would take over 800 MB)
# foldwise checks the cap itself (open_image), instead of PIL's decompression-bomb error at twice its 89 MP default,
# so a 15000 x 15000 scan decodes (reduced) and a message names the file past the cap.
Image.MAX_IMAGE_PIXELS = None


def entries(directory: Path) -> list[Path]:
    """What `directory` holds, sorted by name; an unreadable directory is an error naming it."""
    try:
        return sorted(directory.iterdir())
    except PermissionError as e:
        raise FoldwiseError(f"{directory}: cannot read this directory ({e.strerror}); fix its permissions.") from e


def scan_images(directory: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly inside `directory`, each sorted by name; sub-folders are neither."""
    files = [p for p in entries(directory) if p.is_file()]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]


def warn_skipped(directory: Path, skipped: list[Path]) -> None:
    """Non-image files (.DS_Store, notes, archives) among the images are skipped, with a warning naming them."""
    if skipped:
        log.warning(
            "%s: skipping %d non-image file(s): %s",
            directory,
            len(skipped),
            ", ".join(p.name for p in skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
        )


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside `directory`, sorted by name; other files are skipped with a warning."""
    images, others = scan_images(directory)
    warn_skipped(directory, others)
    return images


def native_image_size(source: ImageSource, sample: int = 256) -> int:
    """Median shorter side of the images: every array image, or an evenly spread sample of up to `sample` files
    (PIL reads only their headers)."""
    if isinstance(source, ArrayImages):
        return min(source.image_shape)
    if not source:
        return 0
    picks = np.unique(np.linspace(0, len(source) - 1, min(sample, len(source))).round().astype(int))
    sides = []
    for i in picks:
        try:
            with open_image(source[i]) as im:
                sides.append(min(im.size))
        except FoldwiseError:
            continue  # a broken file is reported by the decoder, with every other broken file
    return int(np.median(sides)) if sides else 0


def check_not_empty_files(paths: list[Path]) -> None:
    """Zero-byte files are failed downloads or copies: name them before any decoding starts."""
    empty = [p for p in paths if p.stat().st_size == 0]
    if empty:
        shown = ", ".join(str(p) for p in empty[:5])
        raise FoldwiseError(
            f"{len(empty)} image file(s) are empty (0 bytes): {shown}. Download them again or remove them."
        )


def open_image(path: Path) -> Image.Image:
    """PIL's lazy open (the header only), refusing images past PIXEL_CAP with a message naming the file."""
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FoldwiseError(f"{path}: cannot decode this image ({e}). Replace or remove the file.") from e
    if im.width * im.height > PIXEL_CAP:
        im.close()
        raise FoldwiseError(
            f"{path}: {im.width} x {im.height} = {im.width * im.height / 1e6:.0f} megapixels, more than foldwise "
            f"decodes ({PIXEL_CAP / 1e6:.0f}); downscale it or remove it."
        )
    return im


def hidden(path: Path) -> bool:
    """Dot files and macOS archive debris (.DS_Store, __MACOSX/) that are never images or classes."""
    return path.name.startswith((".", "__"))


def unwrap(directory: Path) -> Path:
    """The folder itself, or the same-named folder nested inside it when that is all it holds: Kaggle archives
    often unpack as test/test/, train/train/ or seg_train/seg_train/."""
    while directory.is_dir():
        inside = [p for p in entries(directory) if not hidden(p)]
        if len(inside) != 1 or not inside[0].is_dir() or inside[0].name != directory.name:
            break
        directory = inside[0]
    return directory


def holds_images(directory: Path) -> bool:
    """True when image files lie directly inside `directory`."""
    return directory.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in entries(directory))
