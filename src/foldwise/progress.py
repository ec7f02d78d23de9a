"""tqdm progress bars on a terminal only: a log file (CI, nohup, per-GPU fold logs) gets the readable INFO lines
(one per finished epoch and stage) instead of bar fragments."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar tuned for both terminals and log files."""
    kwargs.setdefault("mininterval", 0.1)
    kwargs.setdefault("dynamic_ncols", True)
    # Only on a terminal, and under torchrun only rank 0.
    kwargs.setdefault("disable", not sys.stderr.isatty() or os.environ.get("RANK", "0") != "0")
    return tqdm(iterable, **kwargs)
