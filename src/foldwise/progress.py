"""tqdm progress bars: live on a terminal, a line every 30 s in logs (CI, nohup) instead of thousands."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar tuned for both terminals and log files."""
    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 30.0)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("disable", os.environ.get("RANK", "0") != "0")  # under torchrun only rank 0 draws bars
    return tqdm(iterable, **kwargs)
