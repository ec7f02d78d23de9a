"""The speed recipe's optimizer keys from airbench on tiny data: BatchNorm parameters at a scaled learning rate
(optim.norm_lr_scale) and lookahead (optim.lookahead), with their checks and their place in checkpoints."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_recipe
from foldwise.errors import FoldwiseError
from foldwise.training.engine import Lookahead, Trainer, TrainingSet
from foldwise.training.inputs import ResidentImages
from foldwise.training.models import create_model

SPEEDNET = {"name": "foldwise_speednet", "kwargs": {"widths": [8, 8, 8], "bn_weights": False}}


def trainer_for(recipe, n: int = 64) -> Trainer:
    """A Trainer over n random 16 px images of 2 classes (16 per batch: n / 16 steps per epoch)."""
    torch.manual_seed(0)
    model = create_model(recipe.model, 2)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    images = ResidentImages(torch.randint(0, 255, (n, 16, 16, 3), dtype=torch.uint8), mean, std, False, recipe.data)
    rows = torch.arange(n)
    return Trainer(model, recipe, TrainingSet(images, rows % 2, rows, 2, rows), recipe.optim.epochs, False)


def test_norm_parameters_learn_at_the_scaled_rate_with_the_same_decay_per_step():
    recipe = tiny_recipe(model=SPEEDNET, optim={"norm_lr_scale": 64, "weight_decay": 1e-3, "warmup_epochs": 0})
    trainer = trainer_for(recipe)
    trainer.train_epoch(torch.Generator().manual_seed(0))
    norms = {id(p) for m in trainer.module.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    groups = {("norm" if any(id(p) in norms for p in g["params"]) else g["weight_decay"]): g for g in
              trainer.optimizer.param_groups}  # fmt: skip
    norm, weights, other = groups["norm"], groups[1e-3], groups[0.0]  # other: the whitening stem's bias
    assert norm["lr"] == pytest.approx(64 * weights["lr"]) and weights["lr"] > 0 and other["lr"] == weights["lr"]
    assert norm["lr"] * norm["weight_decay"] == pytest.approx(weights["lr"] * weights["weight_decay"])
    assert all(p.requires_grad for g in groups.values() for p in g["params"])  # frozen BN scales stay out


def test_lookahead_pulls_the_weights_back_every_fifth_step_and_at_each_epoch_end():
    module = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    lookahead = Lookahead(module, base=0.5)
    with torch.no_grad():
        module.weight.fill_(1.0)
    lookahead.update(module, step=4, total=10)  # not a fifth step: nothing moves
    assert module.weight.eq(1.0).all()
    lookahead.update(module, step=10, total=10)  # rho = 0.5 x 1^3: halfway back to the slow copy
    assert module.weight.eq(0.5).all() and lookahead.slow["weight"].eq(0.5).all()
    with torch.no_grad():
        module.weight.fill_(2.0)
    lookahead.update(module, step=2, total=2, epoch_end=True)  # off-cycle: the epoch's steps are kept, averaged
    assert module.weight.eq(1.25).all() and lookahead.slow["weight"].eq(1.25).all()


def test_lookahead_trains_and_resumes_from_its_state():
    recipe = tiny_recipe(model=SPEEDNET, optim={"lookahead": 0.774, "epochs": 3, "warmup_epochs": 0})
    trainer = trainer_for(recipe, n=160)  # 10 steps per epoch: two lookahead updates each
    trainer.train_epoch(torch.Generator().manual_seed(0))
    state = trainer.module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trainer.lookahead.slow.items())  # synced at the epoch's end
    saved = trainer.state_dict()
    assert saved["lookahead"] is trainer.lookahead.slow
    again = trainer_for(recipe, n=160)
    again.load_state_dict(saved)
    assert all(torch.equal(again.lookahead.slow[k], v) for k, v in saved["lookahead"].items())


@pytest.mark.parametrize(
    "optim",
    [{"norm_lr_scale": 0}, {"lookahead": 1.0}, {"norm_lr_scale": 64, "backbone_lr_scale": 0.1}],
)
def test_airbench_keys_out_of_range_are_refused(optim):
    with pytest.raises(FoldwiseError, match="norm_lr_scale|lookahead"):
        tiny_recipe(optim=optim)
