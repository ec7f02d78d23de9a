"""The whole chain through `bash submit.sh`, on a tiny competition in a temp directory, run twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from conftest import make_tiny_competition, tiny_recipe

REPO = Path(__file__).resolve().parents[1]


def write_recipe(path: Path, **sections) -> Path:
    """A tiny recipe as a YAML file (experiment name = file stem)."""
    data = tiny_recipe(**sections).to_dict()
    data.pop("name")
    path.write_text(yaml.safe_dump(data))
    return path


def run_submit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROOT=str(tmp_path), K="3", SEED="1")
    return subprocess.run(["bash", str(REPO / "submit.sh"), *args], capture_output=True, text=True, env=env)


def test_submit_sh_end_to_end_then_rerun_reuses_everything(tmp_path):
    """folds -> 2 recipes x 3 folds -> blend report -> full retrain -> valid submission; a rerun retrains nothing."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=9, test_per_class=2)
    cnn = write_recipe(tmp_path / "tiny-cnn.yaml")
    other = write_recipe(tmp_path / "tiny-wide.yaml", model={"kwargs": {"widths": [16, 16, 32]}}, run={"seed": 3})
    result = run_submit(tmp_path, str(comp), str(cnn), str(other))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    out = tmp_path / "output" / "tiny"
    folds = pd.read_csv(tmp_path / "folds" / "tiny.csv")
    assert sorted(folds["fold"].unique()) == [0, 1, 2]
    for exp in ("tiny-cnn", "tiny-wide"):
        for k in range(3):
            assert (out / exp / f"fold{k}" / "oof.npz").exists()
        assert (out / exp / "full" / "test.npz").exists()
    report = (out / "blend" / "report.md").read_text()
    for candidate in ("tiny-cnn", "tiny-wide", "max_confidence_raw", "max_confidence", "mean_probability", "stacking"):
        assert f"| {candidate} |" in report
    for section in (
        "Decision",
        "Data",
        "Candidates",
        "Learning curves",
        "Per-class accuracy and confusion",
        "Calibration",
        "Most confident mistakes",
        "Test predictions by class",
        "Full retrain vs fold average",
        "Configuration",
    ):
        assert f"## {section}" in report
    assert "full retrain" in report and "foldwise revision" in report
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(images) >= 9  # 7 plots + the mistakes (when there are any) and test-prediction galleries
    for name in images:
        assert (out / "blend" / name).stat().st_size > 2000, name
    page = (out / "blend" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(images) and "<table>" in page

    submission = pd.read_csv(out / "submission.csv", dtype=str)
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    assert list(submission.columns) == list(sample.columns)
    assert submission["id"].tolist() == sample["id"].tolist()
    assert "accuracy" in result.stdout and str(out / "submission.csv") in result.stdout

    stamp = (out / "tiny-cnn" / "fold0" / "model.pt").stat().st_mtime_ns
    again = run_submit(tmp_path, str(comp), str(cnn), str(other))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished earlier, skipping") == 8  # 2 recipes x (3 folds + full)
    assert (out / "tiny-cnn" / "fold0" / "model.pt").stat().st_mtime_ns == stamp


def test_quiet_leaves_warnings_only(tmp_path):
    """`foldwise -q` logs no INFO lines (the epoch lines are INFO); errors and warnings still reach stderr."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny")
    recipe = write_recipe(tmp_path / "r.yaml")
    base = [sys.executable, "-m", "foldwise", "--root", str(tmp_path)]
    subprocess.run([*base, "folds", str(comp), "--no-dedup"], check=True, capture_output=True)
    result = subprocess.run([*base, "-q", "train", str(comp), "-c", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0 and " INFO " not in result.stderr and "done:" in result.stdout


def test_cli_error_is_one_clear_line_and_exit_2(tmp_path):
    """A user error (here: training before folds exist) prints what to do, without a traceback."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny")
    recipe = write_recipe(tmp_path / "r.yaml")
    cmd = [sys.executable, "-m", "foldwise", "--root", str(tmp_path), "train", str(comp), "-c", str(recipe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 2
    assert "foldwise folds" in result.stderr and "Traceback" not in result.stderr


def test_submit_sh_one_fold_per_gpu_path(tmp_path):
    """GPUS=0,1 runs the folds as parallel processes (here on CPU), one log per fold, then the usual stages; a third
    fold waits for a GPU to free up and takes that one."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=6, test_per_class=2)
    recipe = write_recipe(tmp_path / "tiny.yaml")
    env = dict(os.environ, ROOT=str(tmp_path), K="3", GPUS="0,1")
    result = subprocess.run(
        ["bash", str(REPO / "submit.sh"), str(comp), str(recipe)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = tmp_path / "output" / "tiny"
    assert "on GPUs 0,1, one fold each" in result.stdout
    assert "fold 0 -> GPU 0" in result.stdout and "fold 1 -> GPU 1" in result.stdout
    assert re.search(r"fold 2 -> GPU [01] ", result.stdout)
    for k in (0, 1, 2):
        assert (out / "tiny" / f"fold{k}" / "oof.npz").exists()
        log = (out / "logs" / f"fold{k}.log").read_text()
        assert "wrote" in log and f"tiny fold {k} epoch 2/2: train_loss" in log and "img/s" in log and "ETA" in log
        assert "\r" not in log and "batch/s" not in log, "a log file gets lines, not progress-bar fragments"
    assert (out / "submission.csv").exists()
