"""Never a silently wrong submission: changed pixels are noticed, runs are not raced, blends and reports do not drift.

Each test names the way main at c96b2e5 went wrong: it skipped runs whose images had changed, let two processes
write one run folder, and let a killed blend leave a new blend.json beside an old report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import digit_arrays, make_tiny_competition, tiny_recipe
from foldwise.cli import main
from foldwise.errors import FoldwiseError
from foldwise.fileio import HOST, atomic_path, write_text_atomic


def uncompressed(comp: Path) -> None:
    """Re-save every PNG without compression: same dimensions give the same file size, so an edit can keep both
    the size and (with os.utime) the modification time, the case a size + mtime cache key cannot see."""
    for path in sorted(comp.rglob("*.png")):
        Image.open(path).save(path, compress_level=0)


def replace_keeping_size_and_mtime(path: Path, pixels: np.ndarray) -> None:
    """Overwrite an image with other pixels, then restore its old modification time (the size stays the same)."""
    before = path.stat()
    Image.fromarray(pixels).save(path, compress_level=0)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture
def trained(tmp_path):
    """A tiny competition (uncompressed PNGs), its folds, and fold 0 of a tiny recipe trained through the CLI."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny")
    uncompressed(comp)
    recipe = tiny_recipe().to_dict()
    recipe.pop("name")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["--root", str(tmp_path), "folds", str(comp), "--no-dedup"]) == 0
    assert main(["--root", str(tmp_path), "train", str(comp), "-c", str(tmp_path / "tiny.yaml"), "--fold", "0"]) == 0
    return tmp_path, comp, tmp_path / "output" / "tiny" / "tiny" / "fold0"


@pytest.fixture(autouse=True)
def info_logs(caplog):
    """The log lines these tests read (skipping, predicting again, epochs) are INFO."""
    caplog.set_level(logging.INFO)


def train_again(root: Path, comp: Path, *extra: str) -> int:
    return main(["--root", str(root), "train", str(comp), "-c", str(root / "tiny.yaml"), "--fold", "0", *extra])


def test_changed_test_image_is_predicted_again_not_retrained(trained, caplog):
    """A test image replaced with another picture (same name, size and mtime): test.npz is predicted again from
    model.pt (only that row changes), nothing is retrained, and the log says why."""
    root, comp, run = trained
    before = {name: (run / name).read_bytes() for name in ("model.pt", "oof.npz", "history.csv")}
    old = np.load(run / "test.npz")["logits"]
    victim = sorted((comp / "test").glob("*.png"))[0]
    replace_keeping_size_and_mtime(victim, np.full((8, 8), 255, dtype=np.uint8))  # a white square, no digit
    caplog.clear()
    assert train_again(root, comp) == 0
    assert "the test images changed since it was trained: predicting them again with its model.pt" in caplog.text
    assert "epoch 2/2" not in caplog.text
    assert {name: (run / name).read_bytes() for name in before} == before
    new = np.load(run / "test.npz")["logits"]
    changed = np.flatnonzero(np.abs(new - old).max(axis=1) > 0)
    assert changed.tolist() == [0]
    caplog.clear()
    assert train_again(root, comp) == 0 and "finished earlier, skipping" in caplog.text


def test_changed_training_image_retrains_the_run(trained, caplog):
    """A training image replaced (same name, size and mtime): the run trains again, saying why."""
    root, comp, run = trained
    old_model = (run / "model.pt").read_bytes()
    victim = sorted((comp / "train").glob("*.png"))[5]
    replace_keeping_size_and_mtime(victim, digit_arrays(1, offset=40)[0][7])
    caplog.clear()
    assert train_again(root, comp) == 0
    assert "the training images changed since it was trained (their content fingerprint differs)" in caplog.text
    assert "epoch 2/2" in caplog.text
    assert (run / "model.pt").read_bytes() != old_model


def test_predicting_again_reproduces_the_training_time_test_logits(trained):
    """model.pt alone gives exactly the test logits the run wrote (the same TTA, weights and normalization)."""
    from foldwise.data.formats import load_competition
    from foldwise.training.predict import predict_again
    from foldwise.training.runs import plan_run
    from foldwise.workspace import Workspace

    root, comp, run = trained
    expected = np.load(run / "test.npz")["logits"]
    predict_again(plan_run(load_competition(comp), tiny_recipe(), 0, Workspace(root)))
    np.testing.assert_array_equal(np.load(run / "test.npz")["logits"], expected)


def foldwise_train(root: Path, comp: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "foldwise", "--root", str(root), "train", str(comp), "-c", str(root / "slow.yaml")]
    return subprocess.Popen(
        [*command, "--fold", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def racing(tmp_path):
    """A competition with folds and a recipe slow enough (a few seconds) for two processes to overlap."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=20)
    recipe = tiny_recipe(optim={"epochs": 12}).to_dict()
    recipe.pop("name")
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["--root", str(tmp_path), "folds", str(comp), "--no-dedup"]) == 0
    return tmp_path, comp


def test_two_different_runs_on_one_folder_one_is_refused(racing):
    """Two `foldwise train` processes started together with different learning rates: exactly one trains, the other
    exits 2 naming the run folder (at c96b2e5 both exited 0 and the folder ended with either one)."""
    root, comp = racing
    procs = [foldwise_train(root, comp, "--set", f"optim.lr={lr}") for lr in (0.05, 0.04)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    run = root / "output" / "tiny" / "slow" / "fold0"
    assert str(run) in refusal
    assert re.search(r"is training a different run here|already trained with a different recipe", refusal)
    assert len(refusal.strip().splitlines()[-1:]) == 1 and "Traceback" not in refusal
    winner = 0.05 if results[0][0] == 0 else 0.04
    assert yaml.safe_load((run / "config.yaml").read_text())["recipe"]["optim"]["lr"] == winner


def test_two_identical_runs_train_once(racing):
    """The same command twice at once: both exit 0, the fold trains once (the second waits, then skips)."""
    root, comp = racing
    procs = [foldwise_train(root, comp) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    logs = [err for _, err in results]
    assert sum("slow fold 0 epoch 12/12:" in err for err in logs) == 1
    assert any("finished earlier, skipping" in err for err in logs)


@pytest.fixture
def blended(trained):
    """The fixture run plus fold 1, blended (one model) with report and submission."""
    root, comp, run = trained
    assert main(["--root", str(root), "train", str(comp), "-c", str(root / "tiny.yaml"), "--fold", "all"]) == 0
    assert main(["--root", str(root), "blend", str(comp), "tiny"]) == 0
    assert main(["--root", str(root), "submit", str(comp)]) == 0
    return root, comp


def test_submit_refuses_a_blend_fitted_on_logits_that_changed(blended, capsys):
    """A model retrained after the blend (new OOF logits): submit exits 2 and names blend.json; blending again
    fixes it. (c96b2e5 submitted the old blend's weights applied to the new model.)"""
    root, comp = blended
    submission = (root / "output" / "tiny" / "submission.csv").read_bytes()
    assert train_again(root, comp, "--force", "--set", "optim.lr=0.02") == 0
    capsys.readouterr()
    assert main(["--root", str(root), "submit", str(comp)]) == 2
    err = capsys.readouterr().err
    assert "blend.json: fitted on out-of-fold logits of tiny that have changed since" in err
    assert (root / "output" / "tiny" / "submission.csv").read_bytes() == submission  # nothing overwritten
    assert main(["--root", str(root), "blend", str(comp), "tiny"]) == 0
    assert main(["--root", str(root), "submit", str(comp)]) == 0


def test_report_names_the_blend_it_describes(blended):
    """report.md and report.html carry the sha256 of the blend.json they were made from."""
    root, _ = blended
    out = root / "output" / "tiny" / "blend"
    digest = hashlib.sha256((out / "blend.json").read_bytes()).hexdigest()[:16]
    assert f"`blend.json` sha256 `{digest}`" in (out / "report.md").read_text()
    assert digest in (out / "report.html").read_text()


def test_report_refuses_candidates_of_another_blend(blended, capsys):
    """oof_candidates.npz from another blend run than blend.json (an interrupted blend): the report refuses."""
    root, comp = blended
    out = root / "output" / "tiny" / "blend"
    saved = dict(np.load(out / "oof_candidates.npz"))
    np.savez(out / "oof_candidates.npz", **{**saved, "labels": saved["labels"][::-1]})
    assert main(["--root", str(root), "report", str(comp)]) == 2
    assert "oof_candidates.npz: not the one" in capsys.readouterr().err


def test_killed_blend_leaves_no_temp_files_and_the_next_report_matches(blended):
    """`foldwise blend` SIGKILLed right after it replaced blend.json (while it draws the report's plots): the next
    `foldwise report` removes the killed process's temp files and describes the new blend.json."""
    root, comp = blended
    out = root / "output" / "tiny" / "blend"
    old = (out / "blend.json").stat().st_mtime_ns
    command = [sys.executable, "-m", "foldwise", "--root", str(root), "blend", str(comp), "tiny", "--seed", "7"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (out / "blend.json").stat().st_mtime_ns == old and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stray = out / f".confusion.png.{HOST}-{proc.pid}.abc123.tmp.png"  # as an interrupted savefig leaves it
    stray.write_bytes(b"")
    assert main(["--root", str(root), "report", str(comp)]) == 0
    assert not list(out.glob(".*.tmp*")), "temp files of the killed blend are cleaned up"
    digest = hashlib.sha256((out / "blend.json").read_bytes()).hexdigest()[:16]
    assert f"`blend.json` sha256 `{digest}`" in (out / "report.md").read_text()
    assert json.loads((out / "blend.json").read_text())["seed"] == 7


def test_a_living_writers_temp_file_is_left_alone(tmp_path):
    """Only temp files of dead processes of this host are removed; another live writer's stays."""
    mine = tmp_path / f".a.txt.{HOST}-{os.getpid()}.xyz.tmp.txt"
    dead = tmp_path / f".b.txt.{HOST}-999999999.xyz.tmp.txt"
    other_host = tmp_path / ".c.txt.elsewhere-999999999.xyz.tmp.txt"
    for path in (mine, dead, other_host):
        path.write_text("partial")
    write_text_atomic(tmp_path / "d.txt", "done")
    assert mine.exists() and other_host.exists() and not dead.exists()


def test_artifacts_get_the_umask_permissions(tmp_path):
    """Atomic writes end with the mode a plain open() gives (c96b2e5 left every artifact -rw-------)."""
    old = os.umask(0o022)
    try:
        import importlib

        import foldwise.fileio as fileio

        importlib.reload(fileio)
        fileio.write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)
        importlib.reload(fileio)


def test_read_only_output_folder_is_one_clear_error(tmp_path, monkeypatch):
    """A folder foldwise may not write into: one message naming it and what to do, no traceback."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(FoldwiseError, match=r"out: cannot write here \(Permission denied\); make the folder writable"):
        with atomic_path(tmp_path / "out" / "x.csv"):
            pass


def test_one_epoch_reaches_the_recipes_learning_rate(tmp_path):
    """`--set optim.epochs=1` with a one-epoch warmup: the schedule still reaches the peak lr (c96b2e5 trained the
    whole epoch at the warmup lr and scored 0.10)."""
    import torch

    from foldwise.config import OptimConfig
    from foldwise.training.optim import create_optimizer_and_scheduler

    model = torch.nn.Linear(4, 2)
    cfg = OptimConfig(lr=0.1, epochs=1, warmup_epochs=1, warmup_ratio=0.01)
    optimizer, scheduler = create_optimizer_and_scheduler(model, cfg, steps_per_epoch=20)
    lrs = []
    for step in range(1, 21):
        scheduler.step_update(num_updates=step)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(0.1, rel=1e-6)
    assert lrs[-1] < 0.02  # and it anneals


def test_changed_images_give_a_new_decode_cache(tmp_path):
    """The decode cache is keyed by content: an edit that keeps size and mtime is decoded again (c96b2e5 kept
    serving the old pixels from a cache keyed by size and mtime)."""
    from foldwise.data.cache import cached_images

    comp = make_tiny_competition(tmp_path / "c")
    uncompressed(comp)
    paths = sorted((comp / "test").glob("*.png"))
    first = np.array(cached_images(tuple(paths), 8, tmp_path / "cache", "test"))
    replace_keeping_size_and_mtime(paths[2], np.zeros((8, 8), dtype=np.uint8))
    second = np.array(cached_images(tuple(paths), 8, tmp_path / "cache", "test"))
    assert (second[2] == 0).all() and not (first[2] == 0).all()
    np.testing.assert_array_equal(np.delete(first, 2, axis=0), np.delete(second, 2, axis=0))


def test_the_loops_second_report_keeps_only_the_oof_plots_of_this_very_blend(blended):
    """write_report(reuse=True), the loop's report after the full retrain, keeps the OOF plots drawn for this
    blend.json and folds (plots.json holds their digests) and redraws the test predictions; a plot gone from disk,
    a digest of another blend.json or folds sidecar, or an unreadable plots.json draws them all again, and the report
    reads the same either way."""
    from foldwise.data.formats import load_competition
    from foldwise.reporting.report import write_report
    from foldwise.workspace import Workspace

    root, comp_dir = blended
    ws, comp = Workspace(root), load_competition(comp_dir)
    out = ws.blend_dir(comp.name)

    def inode(name: str) -> int:  # every plot is written atomically (a new file), so a redraw changes it
        return (out / name).stat().st_ino

    drawn = {name: inode(name) for name in ("confusion.png", "mistakes.png", "test_examples.png")}
    report = (out / "report.md").read_text()
    write_report(ws, comp, reuse=True)
    assert inode("confusion.png") == drawn["confusion.png"] and inode("mistakes.png") == drawn["mistakes.png"]
    assert inode("test_examples.png") != drawn["test_examples.png"]
    assert (out / "report.md").read_text() == report
    (out / "reliability.png").unlink()
    write_report(ws, comp, reuse=True)
    assert (out / "reliability.png").exists() and inode("confusion.png") != drawn["confusion.png"]
    stamp = json.loads((out / "plots.json").read_text())
    for tampered in ({**stamp, "blend_sha256": "0" * 64}, {**stamp, "folds_sha256": "0" * 64}, "not json", {}):
        write_text_atomic(out / "plots.json", tampered if isinstance(tampered, str) else json.dumps(tampered))
        kept = inode("confusion.png")
        write_report(ws, comp, reuse=True)
        assert inode("confusion.png") != kept and (out / "report.md").read_text() == report
