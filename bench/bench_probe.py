"""Seconds one speed probe takes with the slice step (a far slower format judged on 1/SCOUT_SHARE of the batch) and
without it, as a ratio in one process, each on an empty probe cache; the chosen format and img/s must agree.

    python bench/bench_probe.py [--recipe speed-air] [--size 32] [--repeats 2]

The probes run before every training run and count against a time budget; on a CPU that only emulates bf16, its two
formats were most of a probe's time. Measured on the 2-core AVX2 dev machine: see README "Time budget".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from foldwise.config import load_recipe  # noqa: E402
from foldwise.training import probe as probe_module  # noqa: E402


def probe_seconds(recipe, scout: int) -> tuple[float, probe_module.Speed]:
    """Seconds of one probe on an empty cache with SCOUT_SHARE = `scout`, and its result."""
    os.environ["FOLDWISE_CACHE"] = tempfile.mkdtemp(prefix="foldwise-probe-")
    probe_module.SCOUT_SHARE = scout
    start = time.perf_counter()
    speed = probe_module.probe(recipe, torch.device("cpu"), 10)
    return time.perf_counter() - start, speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="speed-air")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, [f"data.image_size={args.size}", "run.bf16=auto", "run.channels_last=auto"])
    scouted = probe_module.SCOUT_SHARE
    times: dict[str, list[float]] = {"without the slice step": [], "with it": []}
    for _ in range(args.repeats):
        for label, scout in (("without the slice step", 10**9), ("with it", scouted)):
            seconds, speed = probe_seconds(recipe, scout)
            times[label].append(seconds)
            chosen = f"{'bf16' if speed.bf16 else 'fp32'}{'+cl' if speed.channels_last else ''}"
            print(f"{label}: {seconds:.1f} s, chose {chosen} at {speed.train_ips:.0f} img/s, {speed.formats}")
    base, new = (statistics.median(t) for t in times.values())
    print(f"{args.recipe} at {args.size} px: median {base:.1f} s -> {new:.1f} s, ratio {new / base:.2f}")


if __name__ == "__main__":
    main()
