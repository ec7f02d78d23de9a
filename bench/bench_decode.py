"""Image decoding throughput: foldwise's parallel decoder vs a one-process PIL loop, as a ratio in one process.

    python bench/bench_decode.py [--n 50000] [--size 32] [--repeats 3] [--workers 0]

Writes N small JPEGs (smooth random pictures, size x size) into a temp dir once, then decodes all of them with
`foldwise.data.cache.decode_images` (one worker process per core), with the same function in one process, and with a
plain PIL loop (open, convert("RGB"), copy into the array), interleaved --repeats times. foldwise writes into a
memory-mapped .npy file as its cache does (its workers write straight into the file's pages); the PIL loop writes
into an array in RAM, the cheaper target, so the ratio is not flattered. Prints img/s and median ratios to
the PIL loop. Goal on the 2-core dev machine: >= 1.8x. Results: see README "Performance notes".
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from foldwise.data.cache import decode_images


def write_jpegs(directory: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """`n` JPEGs of size x size: random 4x4 colors upsampled (smooth, like small photos) plus a little noise."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
        pixels = np.clip(pixels + rng.integers(-8, 9, pixels.shape), 0, 255).astype(np.uint8)
        path = directory / f"{i:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def pil_loop(paths: list[Path], size: int, out: np.ndarray) -> None:
    """The baseline: one process, one image after another."""
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            out[i] = np.asarray(im.convert("RGB"))


def images_per_second(method, paths: list[Path], size: int, out: np.ndarray) -> float:
    start = time.perf_counter()
    method(paths, size, out)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000, help="number of JPEGs")
    p.add_argument("--size", type=int, default=32, help="image side in px (decoded at the same size: no resize)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median ratio is printed")
    p.add_argument("--workers", type=int, default=0, help="worker processes for foldwise (0 = one per core)")
    args = p.parse_args()
    workers = args.workers or os.cpu_count() or 1
    methods = {
        "PIL loop, 1 process": pil_loop,
        "foldwise, 1 process": lambda paths, size, out: decode_images(paths, size, out, "decode", workers=1),
        f"foldwise, {workers} workers": lambda paths, size, out: decode_images(paths, size, out, "decode", workers),
    }
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        start = time.perf_counter()
        paths = write_jpegs(Path(tmp), args.n, args.size)
        print(f"{args.n} JPEGs of {args.size}x{args.size} written in {time.perf_counter() - start:.1f} s; "
              f"{os.cpu_count()} cores, Pillow {Image.__version__}")  # fmt: skip
        shape = (args.n, args.size, args.size, 3)
        in_ram = np.zeros(shape, dtype=np.uint8)
        in_file = np.lib.format.open_memmap(Path(tmp) / "cache.npy", mode="w+", dtype=np.uint8, shape=shape)
        reference = np.zeros_like(in_ram)
        pil_loop(paths, args.size, reference)  # warm the page cache, and the answer every method must give
        results = {name: [] for name in methods}
        for _ in range(args.repeats):  # interleave so machine noise hits every method alike
            for name, method in methods.items():
                out = in_ram if name.startswith("PIL") else in_file
                out[:] = 0
                results[name].append(images_per_second(method, paths, args.size, out))
                assert np.array_equal(out, reference), f"{name} decoded different pixels"
    base = results["PIL loop, 1 process"]
    for name, values in results.items():
        ratios = [v / b for v, b in zip(values, base)]
        print(f"{name:>24}: {statistics.median(values):8.0f} img/s  ratio to the PIL loop "
              f"{statistics.median(ratios):5.2f}x (repeats {min(ratios):.2f}-{max(ratios):.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
