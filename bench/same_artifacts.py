"""Do two foldwise revisions write the same artifacts? Runs `bash submit.sh` on the digits demo with each and compares.

    python bench/same_artifacts.py --base c96b2e5            # the base revision against the working tree
    python bench/same_artifacts.py --base c96b2e5 --head HEAD

For a refactor that must not change results: every fold's oof.npz and test.npz, the full retrains' test.npz,
blend.json and submission.csv are compared. .npz files are compared by their arrays (names, dtypes, shapes and
every byte of the data), because numpy's savez stamps the time into the zip; the rest byte for byte. Both runs use
this interpreter (PYTHONPATH points at each revision's src/), the same seeds and the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def checkout(rev: str, into: Path) -> Path:
    """A clean copy of the repository at `rev` (the working tree itself for 'WORKTREE')."""
    if rev == "WORKTREE":
        return REPO
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), rev], check=True, capture_output=True
    )
    return into


def run_pipeline(tree: Path, root: Path) -> float:
    """`bash submit.sh` of `tree` (the digits demo, built under `root`); returns the wall time in seconds."""
    env = dict(
        os.environ,
        ROOT=str(root),
        PYTHONPATH=str(tree / "src"),
        FOLDWISE_VENV=str(root / "no-venv"),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    start = time.perf_counter()
    result = subprocess.run(["bash", str(tree / "submit.sh")], env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{tree}: submit.sh failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def artifacts(root: Path, name: str) -> dict[str, Path]:
    """The compared files of one run, by path relative to output/<name>/."""
    out = root / "output" / name
    files = [
        *out.glob("*/fold*/oof.npz"),
        *out.glob("*/*/test.npz"),
        out / "blend" / "blend.json",
        out / "submission.csv",
    ]
    return {str(p.relative_to(out)): p for p in files if p.exists()}


def fingerprint(path: Path) -> str:
    """sha256 of a file's bytes, or of an .npz file's arrays (name, dtype, shape, data) in name order."""
    digest = hashlib.sha256()
    if path.suffix != ".npz":
        digest.update(path.read_bytes())
        return digest.hexdigest()
    with np.load(path) as data:
        for key in sorted(data.files):
            array = np.ascontiguousarray(data[key])
            digest.update(f"{key} {array.dtype.str} {array.shape}\n".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--head", default="WORKTREE", help="git revision to test (default: the working tree)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foldwise-same-") as tmp:
        tmp = Path(tmp)
        found = {}
        try:
            for label, rev in (("base", args.base), ("head", args.head)):
                tree = checkout(rev, tmp / f"tree-{label}")
                seconds = run_pipeline(tree, tmp / label)  # each builds the (seeded) digits demo itself
                found[label] = {k: fingerprint(p) for k, p in artifacts(tmp / label, "digits").items()}
                print(f"{label} ({rev}): {len(found[label])} artifacts in {seconds:.0f} s")
        finally:
            for label in ("base", "head"):
                if (tmp / f"tree-{label}").exists():
                    subprocess.run(
                        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / f"tree-{label}")]
                    )
        names = sorted(set(found["base"]) | set(found["head"]))
        differ = [n for n in names if found["base"].get(n) != found["head"].get(n)]
        for n in names:
            same = "same" if n not in differ else "DIFFERENT"
            print(f"{same:9s} {n}  {found['base'].get(n, '-')[:16]}  {found['head'].get(n, '-')[:16]}")
        print(f"{len(names) - len(differ)} of {len(names)} artifacts identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
