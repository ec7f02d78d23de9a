"""Per-fold training artifacts: OOF rows are exactly the fold's ids, finished folds are reused, seeds are recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import reload_run, tiny_recipe
from foldwise.errors import FoldwiseError
from foldwise.training.runs import fold_numbers
from foldwise.training.train import train_run


def test_oof_ids_are_exactly_the_fold_ids(ready):
    """oof.npz holds one row per id of the held-out fold, no more, no less, with their true labels."""
    comp, ws = ready
    run_dir = train_run(comp, tiny_recipe(), 1, ws)
    folds = pd.read_csv(ws.folds_csv(comp.name), dtype={"id": str, "label": str})
    oof = np.load(run_dir / "oof.npz")
    expected = folds[folds["fold"] == 1]
    assert sorted(oof["ids"].tolist()) == sorted(expected["id"])
    label_of = dict(zip(expected["id"], expected["label"]))
    assert [comp.classes[i] for i in oof["labels"]] == [label_of[i] for i in oof["ids"]]
    assert oof["logits"].dtype == np.float32 and oof["logits"].shape == (len(expected), 10)
    test = np.load(run_dir / "test.npz")
    assert test["ids"].tolist() == list(comp.test_ids)
    assert test["logits"].shape == (len(comp.test_ids), 10)


def test_artifacts_describe_themselves(ready):
    """model.pt carries weights, resolved recipe, classes and seed; history.csv has one row per epoch."""
    comp, ws = ready
    run_dir = train_run(comp, tiny_recipe(), 0, ws)
    ckpt = torch.load(run_dir / "model.pt", weights_only=False)
    assert ckpt["classes"] == list(comp.classes)
    assert ckpt["recipe"]["model"]["name"] == "foldwise_cnn"
    assert ckpt["seed"] == 0 and ckpt["fold"] == 0
    assert any(k.endswith("weight") for k in ckpt["state_dict"])
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert {"train_loss", "valid_loss", "valid_acc", "lr"} <= set(history.columns)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed"] == 0 and config["valid_rows"] == 20


def test_same_seed_same_logits_and_finished_fold_is_skipped(ready):
    """Training is deterministic on CPU; a finished fold is not retrained (files untouched) unless forced."""
    comp, ws = ready
    run_dir = train_run(comp, tiny_recipe(), 0, ws)
    first = np.load(run_dir / "oof.npz")["logits"]
    mtime = (run_dir / "model.pt").stat().st_mtime_ns
    train_run(comp, tiny_recipe(), 0, ws)
    assert (run_dir / "model.pt").stat().st_mtime_ns == mtime
    train_run(comp, tiny_recipe(), 0, ws, force=True)
    assert (run_dir / "model.pt").stat().st_mtime_ns != mtime
    np.testing.assert_array_equal(np.load(run_dir / "oof.npz")["logits"], first)


def test_finished_fold_with_other_recipe_is_an_error_not_a_silent_reuse(ready):
    """Reusing a fold trained with different hyperparameters would mix experiments: refuse and keep the files."""
    comp, ws = ready
    run_dir = train_run(comp, tiny_recipe(), 0, ws)
    before = (run_dir / "oof.npz").read_bytes()
    with pytest.raises(FoldwiseError, match="different recipe.*--force"):
        train_run(comp, tiny_recipe(optim={"lr": 0.01}), 0, ws)
    assert (run_dir / "oof.npz").read_bytes() == before


@pytest.mark.parametrize("optim", [{}, {"ema_decay": 0.9}], ids=["plain", "ema"])
def test_full_retrain_writes_test_logits_only(ready, optim):
    """--full trains on every labeled image and writes test.npz, no oof.npz (with EMA: its BatchNorm statistics
    come from the training images, before the test images take their place)."""
    comp, ws = ready
    run_dir = train_run(comp, tiny_recipe(optim=optim), None, ws)
    assert run_dir.name == "full"
    assert (run_dir / "test.npz").exists() and not (run_dir / "oof.npz").exists()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train_rows"] == 100


def test_fold_selection(ready):
    """--fold all lists every fold; a fold that does not exist is a clear error."""
    comp, ws = ready
    assert fold_numbers(ws, comp, "all") == [0, 1, 2, 3, 4]
    assert fold_numbers(ws, comp, "0,3") == [0, 3]
    with pytest.raises(FoldwiseError, match="no fold"):
        fold_numbers(ws, comp, "7")


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"optim": {"ema_decay": 0.8}},
        {"data": {"tta_hflip": True}},
        {"data": {"cutmix": 1.0, "random_erasing": 0.5}},
    ],
    ids=["plain", "ema", "tta", "cutmix+erasing"],
)
def test_oof_logits_come_from_the_saved_weights(ready, sections):
    """Reloading model.pt and predicting the fold's images reproduces oof.npz: OOF scores the weights we submit."""
    comp, ws = ready
    recipe = tiny_recipe(**sections)
    model, _, oof, x = reload_run(comp, ws, train_run(comp, recipe, 0, ws), recipe.data.image_size)
    with torch.no_grad():
        expected = model(x)
        if recipe.data.tta_hflip:
            expected = (expected + model(x.flip(3))) / 2
    np.testing.assert_allclose(oof["logits"], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_ema_changes_the_saved_weights(ready):
    """With ema_decay the saved weights are the EMA's, not the last step's (same seed, same data otherwise)."""
    comp, ws = ready
    plain = torch.load(train_run(comp, tiny_recipe("plain"), 0, ws) / "model.pt", weights_only=False)
    ema = torch.load(train_run(comp, tiny_recipe("ema", optim={"ema_decay": 0.8}), 0, ws) / "model.pt",
                     weights_only=False)  # fmt: skip
    key = next(k for k in plain["state_dict"] if k.endswith("weight"))
    assert not torch.equal(plain["state_dict"][key], ema["state_dict"][key])


def test_early_stopping_sets_the_full_retrains_epochs(ready):
    """Folds stop when valid loss stalls; the full retrain trains for the median stopping epoch, recorded."""
    from foldwise.training.fit import should_stop

    assert not should_stop([{"valid_loss": v} for v in (3, 2, 1)], 2)
    assert should_stop([{"valid_loss": v} for v in (3, 1, 2, 1.5)], 2)
    assert not should_stop([{"valid_loss": v} for v in (3, 1, 2, 1.5)], 0)

    comp, ws = ready
    # A huge lr: valid loss stalls early. 'auto' formats: the full retrain resolves them and still finds its folds.
    recipe = tiny_recipe(optim={"epochs": 30, "patience": 1, "lr": 2.0}, run={"channels_last": "auto"})
    stopped = []
    for fold in (0, 1, 2):
        meta = yaml.safe_load((train_run(comp, recipe, fold, ws) / "config.yaml").read_text())
        stopped.append(meta["epochs"])
        assert meta["epochs"] == len(pd.read_csv(ws.run_dir(comp.name, "tiny", fold) / "history.csv"))
    assert max(stopped) < 30
    full = yaml.safe_load((train_run(comp, recipe, None, ws) / "config.yaml").read_text())
    assert full["epochs"] == int(np.median(stopped))
    assert "median of 3 folds" in full["epochs_source"]


def test_linear_one_cycle_schedule_and_bad_schedule(ready):
    """optim.schedule: linear warms up then decays linearly; an unknown schedule is a clear error."""
    from foldwise.training.optim import create_optimizer_and_scheduler

    recipe = tiny_recipe(optim={"schedule": "linear", "epochs": 4, "warmup_epochs": 1, "lr": 1.0})
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = create_optimizer_and_scheduler(model, recipe.optim, steps_per_epoch=10)
    lrs = []
    for step in range(1, 41):
        scheduler.step_update(num_updates=step)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(1.0, rel=0.05) and lrs[-1] < 0.05
    assert lrs[20] - lrs[21] == pytest.approx(lrs[30] - lrs[31], rel=1e-6)  # straight line down
    with pytest.raises(FoldwiseError, match="cosine or linear"):
        create_optimizer_and_scheduler(model, tiny_recipe(optim={"schedule": "step"}).optim, 10)


def test_image_size_zero_trains_at_the_images_own_size(ready, tmp_path):
    """data.image_size: 0 -> the median shorter side, clamped to 16-64 px (8 px digits train at 16), recorded in
    config.yaml, so a rerun recognizes the finished fold instead of calling it another recipe."""
    from PIL import Image

    from foldwise.data.images import native_image_size
    from foldwise.training.runs import resolve_recipe, run_meta, run_status

    comp, ws = ready
    recipe = tiny_recipe(data={"image_size": 0})
    run_dir = train_run(comp, recipe, 0, ws)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["recipe"]["data"]["image_size"] == 16
    assert list(ws.cache_dir(comp.name).glob("train-16px-*.npy"))
    assert run_status(run_dir, 0, run_meta(comp, resolve_recipe(recipe, comp), 0, ws)) == "done"

    paths = []
    for i, (w, h) in enumerate([(28, 28), (40, 30), (30, 50), (100, 100), (28, 33)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (w, h)).save(paths[-1])
    assert native_image_size(tuple(paths)) == 30  # shorter sides 28, 30, 30, 100, 28
    big = tuple(paths[3:4])
    assert resolve_recipe(recipe, comp.__class__(**{**comp.__dict__, "train_images": big})).data.image_size == 64


def test_ema_batchnorm_statistics_are_recomputed_for_the_ema_weights(ready):
    """The saved EMA model's BatchNorm running stats are exactly those of its own weights on the fold's training
    images (plain, in row order), not an average of other weights' statistics."""
    from torch.optim.swa_utils import update_bn

    from foldwise.config import ModelConfig
    from foldwise.data.cache import cached_images
    from foldwise.training.inputs import ResidentImages
    from foldwise.training.models import create_model

    comp, ws = ready
    recipe = tiny_recipe("ema", optim={"ema_decay": 0.9})
    run_dir = train_run(comp, recipe, 0, ws)
    ckpt = torch.load(run_dir / "model.pt", weights_only=False)
    model = create_model(ModelConfig(**ckpt["recipe"]["model"]), len(comp.classes))
    model.load_state_dict(ckpt["state_dict"])
    saved = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    folds = pd.read_csv(ws.folds_csv(comp.name), dtype={"id": str})
    fold_of = dict(zip(folds["id"], folds["fold"]))
    rows = torch.tensor([i for i, id_ in enumerate(comp.train_ids) if fold_of[id_] != 0])
    images = cached_images(comp.train_images, recipe.data.image_size, ws.cache_dir(comp.name), "train")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (ckpt["mean"], ckpt["std"]))
    inputs = ResidentImages(torch.from_numpy(np.array(images)), mean, std, channels_last=True)
    update_bn(list(inputs.eval_batches(rows, recipe.data.batch_size)), model)
    for key, value in saved.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-5)
