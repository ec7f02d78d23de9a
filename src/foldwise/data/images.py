"""Image files on disk: which files are images, listing a folder's images, their typical size, sanity checks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from foldwise.data.competition import ArrayImages, ImageSource
from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def scan_images(directory: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly inside `directory`, each sorted by name; sub-folders are neither."""
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file())
    except PermissionError as e:
        raise FoldwiseError(f"{directory}: cannot read this directory ({e.strerror}); fix its permissions.") from e
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
    from PIL import Image

    if isinstance(source, ArrayImages):
        return min(source.image_shape)
    if not source:
        return 0
    picks = np.unique(np.linspace(0, len(source) - 1, min(sample, len(source))).round().astype(int))
    sides = []
    for i in picks:
        try:
            with Image.open(source[i]) as im:
                sides.append(min(im.size))
        except OSError:
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


def check_unique(ids: Iterable[str], where: Path, what: str) -> None:
    """Every id once: otherwise an error naming `where` and the first repeated ids (`what` says what they are)."""
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise FoldwiseError(f"{where}: {what} {repeated[:5]}. Remove the copies.")


def index_images(directory: Path, csv_path: Path) -> dict[str, Path]:
    """Map both 'name.ext' and 'name' to the file, scanning the directory once; non-image files are skipped."""
    if not directory.is_dir():
        raise FoldwiseError(f"{directory}: missing; {csv_path.name} refers to images that should be there.")
    index: dict[str, Path] = {}
    for path in list_images(directory):  # non-image files are skipped with a warning
        index[path.name] = path
        index.setdefault(path.stem, path)
    return index


def resolve_ids(ids: list[str], directory: Path, csv_path: Path) -> list[Path]:
    """Image file of every id; every image file in the directory must be listed exactly once."""
    index = index_images(directory, csv_path)
    check_unique(ids, csv_path, "duplicate ids")
    missing = [i for i in ids if i not in index]
    if missing:
        raise FoldwiseError(
            f"{csv_path}: {len(missing)} id(s) have no image in {directory}/ (e.g. {missing[:5]}). "
            "Add the images or remove those rows."
        )
    paths = [index[i] for i in ids]
    unlisted = sorted({p.name for p in index.values()} - {p.name for p in paths})
    if unlisted:
        raise FoldwiseError(
            f"{directory}: {len(unlisted)} image(s) have no row in {csv_path.name} (e.g. {unlisted[:5]}). "
            f"Add rows for them or move them out of {directory.name}/."
        )
    check_not_empty_files(paths)
    return paths
