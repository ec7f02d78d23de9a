"""One small reader per on-disk layout; each returns a Competition."""

from __future__ import annotations

from pathlib import Path

from foldwise.errors import FoldwiseError
from foldwise.formats import csv_layout, folder

LAYOUTS = {"csv": csv_layout.read, "folder": folder.read}


def detect_layout(root: Path) -> str:
    """Name of the first layout whose marker files are present under `root`."""
    if csv_layout.matches(root):
        return "csv"
    if folder.matches(root):
        return "folder"
    found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "nothing"
    raise FoldwiseError(
        f"{root}: no supported layout found (it holds: {found}). Expected either train.csv + train/ + test/ "
        "(+ sample_submission.csv), or train/<class>/* + test/*. See README 'Input layouts'."
    )
