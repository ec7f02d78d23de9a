"""The speed recipe's network: whitening stem from data, translate TTA views."""

from __future__ import annotations

import timm
import torch

import foldwise.training.models  # noqa: F401  (registers the foldwise models in timm)
from foldwise.training.augment import tta_views


def test_whitening_stem_decorrelates_patches():
    """After init_whitening, the stem's first half of channels has ~identity covariance on the same images."""
    torch.manual_seed(0)
    base = torch.randn(64, 1, 16, 16)
    images = torch.cat([base, base * 0.5 + 0.1 * torch.randn(64, 1, 16, 16), torch.randn(64, 1, 16, 16)], 1)
    model = timm.create_model("foldwise_speednet", num_classes=3, widths=(8, 8, 8))
    model.init_whitening(images, eps=1e-6)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, model.whiten.weight[:12])
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert not model.whiten.weight.requires_grad and model.whiten.bias.requires_grad
    assert model(images).shape == (64, 3)


def test_tta_views_are_mirrors_and_one_pixel_shifts():
    """Views: the batch, +-1 px diagonal shifts (reflect), and the mirror of each."""
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    views = tta_views(x, hflip=True, translate=1)
    assert len(views) == 6 and all(v.shape == x.shape for v in views)
    assert torch.equal(views[1][:, :, :-1, :-1], x[:, :, 1:, 1:])  # shifted up-left by one pixel
    assert torch.equal(views[3], x.flip(3))
    assert len(tta_views(x, hflip=False, translate=0)) == 1


def test_speed_net_trains_with_whitening_and_tta(tiny_comp):
    """train_run initializes the whitening stem from the fold's images and predicts with translate TTA; the packaged
    speed-air recipe (fixed BatchNorm scales, norm lr scale, lookahead) trains through it too."""
    import numpy as np

    from conftest import tiny_recipe
    from foldwise.config import load_recipe, recipe_from_dict
    from foldwise.data.folds import make_folds, write_folds
    from foldwise.data.formats import load_competition
    from foldwise.training.train import train_run
    from foldwise.workspace import Workspace

    ws, comp = Workspace(tiny_comp.parents[1]), load_competition(tiny_comp)
    write_folds(make_folds(comp, k=5, seed=0), ws.folds_csv(comp.name), k=5, seed=0)
    recipe = tiny_recipe(
        model={"name": "foldwise_speednet", "kwargs": {"widths": [8, 16, 16]}},
        data={"image_size": 16, "tta_hflip": True, "tta_translate": 1},
        optim={"schedule": "linear", "ema_decay": 0.9, "label_smoothing": 0.2},
    )
    run_dir = train_run(comp, recipe, 0, ws)
    weights = torch.load(run_dir / "model.pt", weights_only=False)["state_dict"]["whiten.weight"]
    assert weights.abs().sum() > 0 and torch.equal(weights[:12], -weights[12:])
    assert np.isfinite(np.load(run_dir / "oof.npz")["logits"]).all()
    air = load_recipe("speed-air").to_dict()  # the packaged airbench training, shrunk to tiny data
    air["model"]["kwargs"]["widths"] = [8, 16, 16]
    air["data"].update(image_size=16, batch_size=16, eval_batch_size=64)
    air["optim"]["epochs"] = 2
    air["run"].update(bf16=False, channels_last=False)
    air.pop("name")
    run_dir = train_run(comp, recipe_from_dict(air, name="speed-air"), 0, ws)
    weights = torch.load(run_dir / "model.pt", weights_only=False)["state_dict"]["whiten.weight"]
    assert weights.abs().sum() > 0 and torch.equal(weights[:12], -weights[12:])
    assert np.isfinite(np.load(run_dir / "oof.npz")["logits"]).all()


def test_airbench_options_of_the_speed_net():
    """bn_weights off freezes every BatchNorm scale at 1 (biases learn), dirac makes each conv's first filters an
    identity, logit_scale multiplies the logits."""
    kwargs = dict(num_classes=3, widths=(8, 16, 16))
    torch.manual_seed(0)
    plain = timm.create_model("foldwise_speednet", **kwargs)
    torch.manual_seed(0)
    air = timm.create_model("foldwise_speednet", bn_weights=False, dirac=True, logit_scale=0.5, **kwargs)
    norms = [m for m in air.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert all(m.weight.requires_grad for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = air.groups[1][0]  # 8 -> 16 channels: filters 0-7 are identities, the rest stay random
    identity = torch.zeros(8, 8, 3, 3)
    identity[range(8), range(8), 1, 1] = 1
    assert torch.equal(conv.weight[:8], identity) and conv.weight[8:].abs().sum() > 0
    air.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 16, 16)
    plain.eval(), air.eval()
    assert torch.allclose(air(x), 0.5 * plain(x), atol=1e-6)
