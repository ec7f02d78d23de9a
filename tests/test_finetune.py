"""Fine-tuning keys on tiny data: a slower backbone (optim.backbone_lr_scale), timm's layer-wise decay
(optim.layer_decay), a classifier-only first phase (optim.head_epochs), frozen BatchNorm (model.freeze_bn); and the
data-dependent steps sampling rows across classes, never the first ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from conftest import tiny_recipe
from foldwise.config import ModelConfig
from foldwise.errors import FoldwiseError
from foldwise.training.engine import Trainer, TrainingSet
from foldwise.training.inputs import ResidentImages
from foldwise.training.models import create_model
from foldwise.training.train import spread_sample


def trainer_for(recipe, model=None, n: int = 64) -> Trainer:
    """A Trainer over n random 8 px images of 2 classes (16 per batch: 4 steps per epoch)."""
    torch.manual_seed(0)
    model = model or create_model(recipe.model, 2)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    images = ResidentImages(torch.randint(0, 255, (n, 8, 8, 3), dtype=torch.uint8), mean, std, False, recipe.data)
    rows = torch.arange(n)
    return Trainer(model, recipe, TrainingSet(images, rows % 2, rows, 2, rows), recipe.optim.epochs, False)


def head_and_backbone_lrs(trainer: Trainer) -> tuple[set, set]:
    head = {id(p) for p in trainer.module.get_classifier().parameters()}
    lrs = ({g["lr"] for g in trainer.optimizer.param_groups if any(id(p) in head for p in g["params"]) == part}
           for part in (True, False))  # fmt: skip
    return tuple(lrs)


def test_backbone_learns_at_a_fraction_of_the_classifier_lr():
    recipe = tiny_recipe(optim={"backbone_lr_scale": 0.1, "warmup_epochs": 0, "epochs": 2})
    trainer = trainer_for(recipe)
    trainer.train_epoch(torch.Generator().manual_seed(0))
    (head,), (backbone,) = head_and_backbone_lrs(trainer)
    assert backbone == pytest.approx(0.1 * head) and head > 0


def test_head_epochs_keep_the_backbone_still_then_release_it():
    recipe = tiny_recipe(optim={"head_epochs": 1, "warmup_epochs": 0, "epochs": 3})
    trainer = trainer_for(recipe)
    backbone = {k: v.clone() for k, v in trainer.module.state_dict().items() if k.startswith("features")}
    head = trainer.module.get_classifier().weight.clone()
    trainer.train_epoch(torch.Generator().manual_seed(0))
    state = trainer.module.state_dict()
    moved = [
        k for k, v in backbone.items() if v.is_floating_point() and "running" not in k and not torch.equal(state[k], v)
    ]
    assert not moved and not torch.equal(trainer.module.get_classifier().weight, head)  # fmt: skip
    trainer.train_epoch(torch.Generator().manual_seed(1))
    assert any(not torch.equal(trainer.module.state_dict()[k], v) for k, v in backbone.items() if "weight" in k)


def test_layer_decay_scales_layers_by_depth_and_excludes_backbone_scale():
    recipe = tiny_recipe(model={"name": "test_efficientnet", "kwargs": {}}, optim={"layer_decay": 0.5})
    trainer = trainer_for(recipe)  # timm's EfficientNet has a group_matcher: layers by depth
    assert len({g["lr_scale"] for g in trainer.optimizer.param_groups}) > 2
    with pytest.raises(FoldwiseError, match="choose one way"):
        tiny_recipe(optim={"layer_decay": 0.5, "backbone_lr_scale": 0.1})


def test_freeze_bn_keeps_pretrained_statistics_while_convolutions_learn():
    recipe = tiny_recipe(model={"freeze_bn": True})
    model = create_model(ModelConfig(name="foldwise_cnn", kwargs={"widths": [8, 16, 16]}, freeze_bn=True), 2)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    convs = {n: p.clone() for n, p in model.named_parameters() if p.ndim == 4}
    trainer = trainer_for(recipe, model)
    trainer.train_epoch(torch.Generator().manual_seed(0))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    assert all(not torch.equal(dict(model.named_parameters())[n], v) for n, v in convs.items())


def test_spread_sample_draws_every_class_not_the_first_rows():
    """Ids sorted by class (a class-folder layout): the whitening and BatchNorm rows span every class in its
    share, the same for the same seed."""
    labels = np.repeat(np.arange(10), 1000)
    rows = list(range(len(labels)))
    chosen = spread_sample(rows, labels, 500, seed=3)
    assert np.bincount(labels[chosen], minlength=10).tolist() == [50] * 10
    assert chosen == spread_sample(rows, labels, 500, seed=3) != spread_sample(rows, labels, 500, seed=4)
    assert spread_sample(rows[:300], labels, 500, seed=3) == rows[:300]
    odd = np.r_[labels[:999], 11]  # a class with one row: a plain seeded draw instead
    assert len(spread_sample(list(range(1000)), odd, 100, seed=0)) == 100
