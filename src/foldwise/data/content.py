"""Content digests of the image files: what a run's identity and the decode cache are keyed by.

A file's digest (SHA-1 of its bytes) is cached beside the decode cache together with the file's size, modification
time, status-change time and inode. A later run re-reads only the files whose status changed: an edit that keeps
the size and the modification time (an overwrite followed by `touch -r`, a copy with preserved times) still moves
the status-change time, which no user command can set, so it is re-read; an unchanged file is never read twice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from foldwise.data.competition import ArrayImages, ImageSource
from foldwise.errors import FoldwiseError
from foldwise.fileio import save_npz
from foldwise.progress import progress

STAT_FIELDS = ("size", "mtime", "ctime", "inode")  # what must match for a cached digest to be reused
VERSION = "content-v1"


def file_digest(path: Path) -> str:
    """SHA-1 of a file's bytes (identity, not security)."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise FoldwiseError(f"{path}: cannot read this file ({e.strerror}); fix its permissions or remove it.") from e
    return digest.hexdigest()


def file_status(paths: list[Path]) -> np.ndarray:
    """(N, 4) int64 of size, mtime_ns, ctime_ns and inode per file."""
    out = np.zeros((len(paths), len(STAT_FIELDS)), dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except OSError as e:
            raise FoldwiseError(f"{path}: cannot read this file ({e.strerror}); restore it or remove it.") from e
        out[i] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return out


def digests_path(cache_dir: Path, split: str) -> Path:
    """Where the digests of one split's files are cached."""
    return Path(cache_dir) / f"{VERSION}-{split}.npz"


def known_digests(cache_dir: Path, split: str) -> dict[str, tuple[np.ndarray, str]]:
    """path -> (file status, digest) as cached by the last file_digests() of this split."""
    cached = digests_path(cache_dir, split)
    if not cached.exists():
        return {}
    with np.load(cached) as f:
        return {p: (s, d) for p, s, d in zip(f["paths"].tolist(), f["status"], f["digests"].tolist())}


def cached_file_digests(paths: list[Path], cache_dir: Path, split: str) -> list[str] | None:
    """The cached digests of these files when every one is cached with its current status, else None (no file is
    read)."""
    known, status = known_digests(cache_dir, split), file_status([Path(p) for p in paths])
    found = [known.get(str(p)) for p in paths]
    if any(f is None or not np.array_equal(f[0], st) for f, st in zip(found, status)):
        return None
    return [f[1] for f in found]


def file_digests(paths: list[Path], cache_dir: Path, split: str) -> list[str]:
    """SHA-1 of every file, re-reading only files whose size, times or inode changed since the cached digests."""
    paths = [Path(p) for p in paths]
    status, known = file_status(paths), known_digests(cache_dir, split)
    cached = digests_path(cache_dir, split)
    digests, changed = [], 0
    for path, st in progress(list(zip(paths, status)), desc=f"content {split}", unit="file", leave=False):
        old = known.get(str(path))
        if old is not None and np.array_equal(old[0], st):
            digests.append(old[1])
        else:
            digests.append(file_digest(path))
            changed += 1
    if changed or len(known) != len(paths):
        save_npz(cached, paths=np.array([str(p) for p in paths]), status=status, digests=np.array(digests))
    return digests


def source_files(source: ImageSource) -> list[Path]:
    """The files an image source reads: one per image, or the containers (and the file that set their order)."""
    return list(source.files) if isinstance(source, ArrayImages) else list(source)


def fingerprint(source: ImageSource, cache_dir: Path, split: str) -> str:
    """sha256 over the content digests of a source's files in order (and its image count): equal exactly when the
    images, their order and the containers' contents are equal."""
    files = source_files(source)
    digest = hashlib.sha256(f"{VERSION} n={len(source)} files={len(files)}\n".encode())
    for d in file_digests(files, cache_dir, split):
        digest.update(d.encode() + b"\n")
    return digest.hexdigest()
