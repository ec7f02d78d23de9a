"""Frozen-backbone features computed once and cached; the small-image ResNet stem; batched random-resized-crop."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch

from conftest import reload_run, tiny_recipe
from foldwise.config import ModelConfig, load_recipe
from foldwise.data.folds import make_folds, write_folds
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError
from foldwise.training.augment import random_resized_crop
from foldwise.training.models import create_model
from foldwise.training.stream import train_transform
from foldwise.training.train import train_run
from foldwise.workspace import Workspace


@pytest.fixture
def frozen(tiny_comp, tmp_path):
    """A tiny competition with folds, and a recipe whose frozen backbone comes from a saved weights file."""
    ws = Workspace(tiny_comp.parents[1])
    comp = load_competition(tiny_comp)
    write_folds(make_folds(comp, k=5, seed=0), ws.folds_csv(comp.name), k=5, seed=0)
    torch.manual_seed(1)
    weights = tmp_path / "backbone.pth"
    torch.save(timm.create_model("foldwise_cnn", num_classes=10, widths=[8, 16, 16]).state_dict(), weights)
    model = {"pretrained_file": str(weights), "freeze_backbone": True, "cache_features": True}
    recipe = tiny_recipe(model=model, data={"tta_hflip": True}, optim={"epochs": 4, "lr": 0.1})
    return comp, ws, recipe


def test_features_are_computed_once_for_every_fold_and_the_full_retrain(frozen, caplog):
    comp, ws, recipe = frozen
    caplog.set_level(logging.INFO)
    for fold in (0, 1, None):
        train_run(comp, recipe, fold, ws)
    files = list(ws.cache_dir(comp.name).glob("features-*.npz"))
    assert len(files) == 1
    assert caplog.text.count("backbone features of width 16 cached") == 1
    assert caplog.text.count("backbone features from the cache") == 2
    with np.load(files[0]) as f:
        assert f["train"].shape == (len(comp.train_ids), 16) and f["test"].shape == (len(comp.test_ids), 16)


def test_oof_logits_equal_the_saved_whole_model_on_images(frozen):
    """model.pt is the whole network with the trained classifier: reloaded, it reproduces oof.npz from pixels
    (flip TTA included, averaged in feature space, which equals averaging logits of a linear head)."""
    comp, ws, recipe = frozen
    run_dir = train_run(comp, recipe, 0, ws)
    model, ckpt, oof, x = reload_run(comp, ws, run_dir, recipe.data.image_size)
    assert ckpt["pipeline"] == "features"
    with torch.no_grad():
        expected = (model(x) + model(x.flip(3))) / 2
    np.testing.assert_allclose(oof["logits"], expected.numpy(), rtol=1e-4, atol=1e-5)
    trained_head = ckpt["state_dict"]["head.weight"]
    assert not torch.equal(trained_head, torch.zeros_like(trained_head))  # the head trained (it starts at zero)
    losses = np.loadtxt(run_dir / "history.csv", delimiter=",", skiprows=1, usecols=2)
    assert losses[-1] < losses[0]  # the classifier learns from the cached features


def test_changed_weights_file_gives_new_features(frozen):
    comp, ws, recipe = frozen
    train_run(comp, recipe, 0, ws)
    torch.manual_seed(2)
    torch.save(timm.create_model("foldwise_cnn", num_classes=10, widths=[8, 16, 16]).state_dict(),
               recipe.model.pretrained_file)  # fmt: skip
    train_run(comp, recipe, 1, ws)
    assert len(list(ws.cache_dir(comp.name).glob("features-*.npz"))) == 2
    with pytest.raises(FoldwiseError, match="already trained with a different weights file"):
        train_run(comp, recipe, 0, ws)  # fold 0 was trained on the old weights: not silently reused


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"model": {"freeze_backbone": False}}, "needs model.freeze_backbone"),
        ({"data": {"cutmix": 1.0}}, "act on pixels"),
    ],
)
def test_cache_features_misuse_is_explained(frozen, sections, message):
    comp, ws, recipe = frozen
    d = recipe.to_dict()
    for section, values in sections.items():
        d[section].update(values)
    from foldwise.config import recipe_from_dict

    with pytest.raises(FoldwiseError, match=message):
        train_run(comp, recipe_from_dict(d, "bad"), 0, ws)


def test_frozen_recipe_is_the_finetune_recipe_with_cached_features():
    frozen = load_recipe("effnet-lite0-frozen")
    tune = load_recipe("effnet-lite0-finetune")
    assert frozen.model.freeze_backbone and frozen.model.cache_features
    assert frozen.model.pretrained_file == tune.model.pretrained_file and frozen.model.name == tune.model.name
    assert frozen.data.image_size == tune.data.image_size


# --- small-image stem -----------------------------------------------------------------------------------------------


def test_small_stem_keeps_resolution_for_small_images():
    """resnet18 on 32 px: the stock stem leaves 1x1 after stage 4, the small stem 4x4 (stride 8 instead of 32)."""
    x = torch.randn(2, 3, 32, 32)
    stock = create_model(ModelConfig(name="resnet18"), 10)
    small = create_model(ModelConfig(name="resnet18", small_stem=True), 10)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert stock.forward_features(x).shape[-1] == 1 and small.forward_features(x).shape[-1] == 4
    assert small(x).shape == (2, 10)


def test_small_stem_on_a_model_without_that_stem_is_an_error():
    with pytest.raises(FoldwiseError, match="no single conv1 \\+ maxpool stem"):
        create_model(ModelConfig(name="foldwise_cnn", small_stem=True), 10)


# --- random-resized-crop ----------------------------------------------------------------------------------------------


def test_random_resized_crop_full_area_square_is_the_identity():
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    out = random_resized_crop(x, 1.0, torch.Generator().manual_seed(0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_random_resized_crop_zooms_in_per_image_and_is_seeded():
    """A horizontal ramp: a crop of smaller area spans a narrower range of values, scaled back to full size."""
    ramp = torch.linspace(-1, 1, 32).expand(8, 3, 32, 32).contiguous()
    a = random_resized_crop(ramp, 0.2, torch.Generator().manual_seed(0))
    b = random_resized_crop(ramp, 0.2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert a.shape == ramp.shape
    spans = a[:, 0, 16].amax(1) - a[:, 0, 16].amin(1)
    assert (spans < 1.95).all() and spans.std() > 0.01  # zoomed in, by a different amount per image
    assert a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5


def test_random_resized_crop_on_both_paths_and_range_check():
    recipe = tiny_recipe(data={"random_resized_crop": 0.35})
    assert "RandomResizedCrop" in repr(train_transform(recipe.data, seed=0))
    with pytest.raises(FoldwiseError, match="random_resized_crop=1.5: must be in"):
        tiny_recipe(data={"random_resized_crop": 1.5})
