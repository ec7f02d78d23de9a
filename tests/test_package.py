"""foldwise as a user installs it: a wheel that carries its recipes, in a fresh virtual environment outside the
checkout, running the whole loop on a read-only competition with outputs where the platform wants them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the source (the build never writes into the checkout)."""
    source = tmp / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(tmp / "dist"),
        str(source),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return next((tmp / "dist").glob("foldwise-*.whl"))


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; its dependencies come from this test's environment
    (a .pth line, offline), foldwise itself only from the wheel."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return venv


@pytest.mark.slow
def test_the_wheel_runs_the_whole_loop_outside_the_checkout(tmp_path):
    """pip wheel -> fresh venv -> from another folder: demo, then `foldwise run` with a packaged recipe name on a
    read-only input folder, outputs under --out and submission.csv at --submission; the input is never written."""
    venv = fresh_venv(tmp_path, build_wheel(tmp_path))
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import foldwise; print(foldwise.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where and str(REPO) not in where
    work = tmp_path / "kaggle"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROOT", "FOLDS", "K", "SET", "GPUS")}
    foldwise = str(venv / "bin" / "foldwise")
    subprocess.run([foldwise, "demo", "digits", "input/digits"], cwd=work, env=env, check=True, capture_output=True)
    before = {p: p.stat().st_mtime_ns for p in (work / "input").rglob("*")}
    for path in sorted((work / "input").rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        command = [
            foldwise,
            "run",
            "input/digits",
            "-c",
            "cpu-cnn",
            "--set",
            "optim.epochs=1",
            "--k",
            "2",
            "--out",
            "working/foldwise",
            "--submission",
            "working/submission.csv",
        ]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    finally:
        for path in (work / "input").rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    submission = pd.read_csv(work / "working" / "submission.csv", dtype=str)
    assert len(submission) == 360 and list(submission.columns) == ["id", "label"]
    assert (work / "working" / "foldwise" / "output" / "digits" / "blend" / "report.html").exists()
    assert {p: p.stat().st_mtime_ns for p in (work / "input").rglob("*")} == before
    assert "== score against" in result.stdout
