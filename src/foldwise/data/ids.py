"""Matching ids (from a csv, or file names) to image files: by name with or without extension, as a path relative to
the competition or image folder, in Unicode normal form C (macOS writes file names decomposed)."""

from __future__ import annotations

import posixpath
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from foldwise.data.images import check_not_empty_files, list_images
from foldwise.errors import FoldwiseError


def nfc(text: str) -> str:
    """Unicode normal form C: `café` typed on Linux and `café` written by macOS compare equal."""
    return unicodedata.normalize("NFC", text)


def check_unique(ids: Iterable[str], where: Path, what: str) -> None:
    """Every id once: otherwise an error naming `where` and the first repeated ids (`what` says what they are)."""
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise FoldwiseError(f"{where}: {what} {repeated[:5]}. Remove the copies.")


def index_images(directory: Path, csv_path: Path) -> dict[str, Path]:
    """Map both 'name.ext' and 'name' (in NFC) to the file, scanning the directory once; non-image files are
    skipped."""
    if not directory.is_dir():
        raise FoldwiseError(f"{directory}: missing; {csv_path.name} refers to images that should be there.")
    index: dict[str, Path] = {}
    for path in list_images(directory):  # non-image files are skipped with a warning
        index[nfc(path.name)] = path
        index.setdefault(nfc(path.stem), path)
    return index


def find_image(id_: str, index: dict[str, Path], directory: Path, root: Path | None) -> Path | None:
    """The file an id names: by name (with or without extension), else as a path relative to the competition
    folder (`train/x.png`) or the image folder (`cat/x.png`), else by its last path component."""
    key = nfc(id_.strip())
    if key in index:
        return index[key]
    relative = posixpath.normpath(key.replace("\\", "/")).lstrip("/")
    if relative.startswith("../"):
        return None
    for base in (root, directory):
        candidate = base / relative if base is not None else None
        if candidate is not None and candidate.is_file():
            return candidate
    return index.get(posixpath.basename(relative)) if "/" in relative else None


def resolve_ids(ids: list[str], directory: Path, csv_path: Path, root: Path | None = None) -> list[Path]:
    """Image file of every id (see find_image); every image file in the directory must be listed exactly once."""
    index = index_images(directory, csv_path)
    check_unique([nfc(i) for i in ids], csv_path, "duplicate ids")
    found = [find_image(i, index, directory, root) for i in ids]
    missing = [i for i, p in zip(ids, found) if p is None]
    if missing:
        raise FoldwiseError(
            f"{csv_path}: {len(missing)} id(s) have no image in {directory}/ (e.g. {missing[:5]}). "
            "Add the images or remove those rows."
        )
    paths: list[Path] = found  # every id found, checked above
    check_unique([str(p) for p in paths], csv_path, "ids naming the same image file")
    unlisted = sorted({p.name for p in index.values()} - {p.name for p in paths})
    if unlisted:
        raise FoldwiseError(
            f"{directory}: {len(unlisted)} image(s) have no row in {csv_path.name} (e.g. {unlisted[:5]}). "
            f"Add rows for them or move them out of {directory.name}/."
        )
    check_not_empty_files(paths)
    return paths
