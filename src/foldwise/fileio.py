"""Atomic writes: a killed run never leaves a half-written artifact that a later stage would trust.

A temp file is named after its process (`.<name>.<host>-<pid>.<random>.tmp<suffix>`), so the next write into the
same folder removes the temp files that killed processes of this host left behind, and never another process's.
Artifacts get the permissions a plain `open(path, "w")` would give (the umask's), not mkstemp's 0600.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import socket
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from foldwise.errors import FoldwiseError

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
TEMP_NAME = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open(path, "w") gives under this process's umask


def not_writable(directory: Path, error: OSError) -> FoldwiseError:
    """The one message for a folder foldwise cannot write into."""
    return FoldwiseError(
        f"{directory}: cannot write here ({error.strerror or error}); make the folder writable, or put the outputs "
        "elsewhere with `foldwise --root DIR` (ROOT=DIR for submit.sh)."
    )


def make_dirs(directory: Path) -> None:
    """mkdir -p, with a clear error when a parent is read-only."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise not_writable(directory, e) from e


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files in `directory` whose writer (a process of this host) is gone; returns what was removed."""
    removed = []
    for entry in os.scandir(directory):
        match = TEMP_NAME.match(entry.name)
        if match is None or match["host"] != HOST or _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path next to `path`; rename it onto `path` (with the umask's permissions) only if the block
    finishes. Temp files that killed writers left in the folder are removed first."""
    path = Path(path)
    make_dirs(path.parent)
    remove_stale_temps(path.parent)
    try:
        prefix = f".{path.name}.{HOST}-{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as e:
        raise not_writable(path.parent, e) from e
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def exclusive(path: str | os.PathLike):
    """Hold an exclusive lock tied to `path` (a hidden .lock file beside it): processes that would build the same
    artifact at once (one fold per GPU, DDP ranks) take turns, and the later ones find it built."""
    path = Path(path)
    make_dirs(path.parent)
    try:
        lock = open(path.parent / f".{path.name}.lock", "a")  # noqa: SIM115 (held for the block)
    except OSError as e:
        raise not_writable(path.parent, e) from e
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` and move the result onto `path`."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """np.savez, atomically and byte-reproducibly: the same arrays always give the same bytes (numpy stamps the
    current time into each zip entry; here every entry carries a fixed date)."""

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())

    return write_atomic(path, write)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
