"""The speed recipe's keys from airbench on tiny data: BatchNorm parameters at a scaled learning rate
(optim.norm_lr_scale), lookahead (optim.lookahead), with their checks and their place in checkpoints, and the
alternating flip (data.hflip_alternate)."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_recipe
from foldwise.errors import FoldwiseError
from foldwise.training.engine import Lookahead, Trainer, TrainingSet
from foldwise.training.inputs import ResidentImages
from foldwise.training.models import create_model

SPEEDNET = {"name": "foldwise_speednet", "kwargs": {"widths": [8, 8, 8], "bn_weights": False}}


def trainer_for(recipe, n: int = 64, seed: int = 0, inputs=ResidentImages) -> Trainer:
    """A Trainer over n random 16 px images of 2 classes (16 per batch: n / 16 steps per epoch)."""
    torch.manual_seed(0)
    model = create_model(recipe.model, 2)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    images = inputs(torch.randint(0, 255, (n, 16, 16, 3), dtype=torch.uint8), mean, std, False, recipe.data)
    rows = torch.arange(n)
    return Trainer(model, recipe, TrainingSet(images, rows % 2, rows, 2, rows, seed), recipe.optim.epochs, False)


class Recorded(ResidentImages):
    """Resident images that keep, per training step, the rows asked for and the (augmented) input given."""

    def train_batches(self, order, labels, batch_size, generator, rank=0, world=1, flips=None):
        self.steps = []
        for start, (x, y) in zip(range(0, len(order), batch_size), super().train_batches(
                order, labels, batch_size, generator, rank, world, flips)):  # fmt: skip
            self.steps.append((order[start : start + batch_size], x))
            yield x, y

    def mirrored(self) -> dict[int, bool]:
        """Row -> whether the last epoch showed it mirrored (every input is the image or its mirror, /255)."""
        seen = {}
        for rows, x in self.steps:
            for row, image in zip(rows.tolist(), x.permute(0, 2, 3, 1)):
                plain = self.images[row].float() / 255
                assert torch.allclose(image, plain) or torch.allclose(image, plain.flip(1))
                seen[row] = not torch.allclose(image, plain)
        return seen


def test_alternating_flip_shows_each_image_mirrored_every_other_epoch():
    recipe = tiny_recipe(model=SPEEDNET, data={"crop_padding": 0, "hflip": True, "hflip_alternate": True})
    trainer = trainer_for(recipe, n=72, seed=3, inputs=Recorded)  # 4 full batches: 8 rows left out each epoch
    epochs = []
    for _ in range(3):
        trainer.train_epoch(torch.Generator().manual_seed(0))
        epochs.append(trainer.data.inputs.mirrored())
    shared = set(epochs[0]) & set(epochs[1])
    assert len(shared) >= 56 and all(epochs[1][row] != epochs[0][row] for row in shared)  # the other side, all
    assert all(epochs[2][row] == epochs[0][row] for row in set(epochs[0]) & set(epochs[2]))  # a coin per image
    assert 16 < sum(epochs[0].values()) < 48
    again = trainer_for(recipe, n=72, seed=3, inputs=Recorded)
    again.step = trainer.steps_per_epoch  # as resumed after epoch 0: epoch 1's side of every image
    again.train_epoch(torch.Generator().manual_seed(5))
    resumed = again.data.inputs.mirrored()
    assert all(resumed[row] != epochs[0][row] for row in set(resumed) & set(epochs[0]))
    other = trainer_for(recipe, n=72, seed=4, inputs=Recorded)
    other.train_epoch(torch.Generator().manual_seed(0))
    seen = other.data.inputs.mirrored()
    assert any(seen[row] != epochs[0][row] for row in set(seen) & set(epochs[0]))  # the run's seed draws the coins


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
