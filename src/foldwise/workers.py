"""How many worker processes a parallel stage (decoding, fingerprinting, streaming) starts by default."""

from __future__ import annotations

import os

MAX_WORKERS = 8  # decoding and loading stop scaling well before this on the machines foldwise runs on


def default_workers() -> int:
    """One per CPU core this process may run on (its affinity mask, which containers and taskset narrow), at most
    MAX_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))
