"""One fold per GPU, in parallel: `foldwise run` starts a `foldwise train` process per fold, each seeing one GPU,
and starts the next fold on whichever GPU frees up first (folds differ in length; a static queue would idle GPUs).

The GPUs are the ones this process may use: CUDA_VISIBLE_DEVICES when a scheduler (SLURM, a container) set it,
ids or UUIDs alike, else every GPU torch sees. A child that finds no GPU fails instead of training on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from foldwise.errors import FoldwiseError
from foldwise.workspace import Workspace

REQUIRE_CUDA = "FOLDWISE_REQUIRE_CUDA"  # set for each child: run.device auto then refuses to fall back to the CPU


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as names for CUDA_VISIBLE_DEVICES."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def cuda_available() -> bool:
    """Whether this process sees a GPU (the children then must too)."""
    import torch

    return torch.cuda.is_available()


def fold_command(comp_dir: Path, ws: Workspace, options, fold: int, layout: str | None, epochs: dict) -> list[str]:
    """The `foldwise train` command of one fold, with the run's recipes, overrides and the plan's epochs."""
    command = [sys.executable, "-m", "foldwise", "--root", str(ws.root), "train", str(comp_dir), "--fold", str(fold)]
    for recipe in options.recipes:
        command += ["-c", recipe]
    for item in options.overrides:
        command += ["--set", item]
    command += ["--metric", options.metric] if options.metric else []
    for name, count in (epochs or {}).items():
        command += ["--epochs", f"{name}={count}"]
    return command + (["--force"] if options.force else []) + (["--layout", layout] if layout else [])


def train_on_gpus(
    comp_dir: Path, ws: Workspace, options, folds: list[int], gpus: list[str], layout=None, epochs: dict | None = None
) -> None:
    """Train `folds` one process per GPU (logs in output/<comp>/logs/fold<k>.log); an error names the failed folds."""
    from foldwise.data.formats import load_competition
    from foldwise.training.choose import default_recipes

    comp = load_competition(comp_dir, layout)
    if not options.recipes:  # the children must train exactly what the parent chose
        options = type(options)(**{**options.__dict__, "recipes": default_recipes(comp)})
    logs = ws.comp_dir(comp.name) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    require = {REQUIRE_CUDA: "1"} if cuda_available() else {}  # on a CPU box GPUS=... runs parallel CPU processes
    waiting, running, failed = list(folds), {}, []
    while waiting or running:
        for gpu in [g for g in gpus if g not in running.values()]:
            if waiting:
                fold = waiting.pop(0)
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu, **require)
                with open(logs / f"fold{fold}.log", "w") as log_file:
                    process = subprocess.Popen(
                        fold_command(comp_dir, ws, options, fold, layout, epochs),
                        env=env,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
                running[(fold, process)] = gpu
                print(f"fold {fold} -> GPU {gpu} (log: {logs / f'fold{fold}.log'})", flush=True)
        for fold, process in [key for key in running if key[1].poll() is not None]:
            del running[(fold, process)]
            if process.returncode:
                failed.append(fold)
        time.sleep(0.5)
    if failed:
        tails = "; ".join(f"fold {k}: {tail(logs / f'fold{k}.log')}" for k in failed)
        raise FoldwiseError(f"{logs}: fold(s) {failed} failed ({tails}); see their logs.")
    print(f"folds {folds} done (logs in {logs})")


def tail(path: Path) -> str:
    """The last non-empty line of a log, for the error message."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-200:] if lines else "(empty log)"
