"""The shipped recipes: documented, and each builds its timm model and runs a forward pass at its image size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from foldwise.config import load_recipe
from foldwise.training.models import create_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "src" / "foldwise" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_is_documented_and_its_model_runs(path):
    """A recipe opens with a comment block naming it and saying why; its model gives (N, classes) logits."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith(f"# {path.stem}:"), "first line must be '# <name>: what it is'"
    assert sum(line.startswith("#") for line in lines[:8]) >= 3, "explain the recipe in a comment block"
    recipe = load_recipe(path)
    model = create_model(recipe.model, num_classes=7).eval()
    size = recipe.data.image_size or 32  # 0 = the data's own size
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_cpu_and_gpu_recipes_ship():
    """submit.sh's two CPU recipes (different architectures) and the seeds' GPU models are all present."""
    names = {p.stem for p in CONFIGS}
    assert {"cpu-cnn", "cpu-resnet", "resnet18", "resnet34", "vgg19_bn"} <= names
    assert (
        load_recipe(CONFIGS[0].parent / "cpu-cnn.yaml").model.name
        != load_recipe(CONFIGS[0].parent / "cpu-resnet.yaml").model.name
    )


FROZEN = ["photo-lite2-frozen", "photo-lite1-frozen", "photo-lite0-frozen"]


def facts(**changes):
    from foldwise.training.choose import Facts

    base = dict(side=32, colour=True, images=40_000, classes=10, device="cpu", weights=True)
    return Facts(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, recipes",
    [
        ({"side": 150}, ["photo-lite2-frozen", "photo-lite1-frozen", "photo-lite0-frozen"]),  # no speed: no fine-tune
        ({"side": 150, "images": 1800, "speeds": {"photo-lite0-finetune": 37}}, FROZEN),  # 2-core CPU: 16 min > 10
        ({"side": 150, "images": 1800, "speeds": {"photo-lite0-finetune": 900}}, [*FROZEN, "photo-lite0-finetune"]),
        ({"side": 150, "images": 1800, "speeds": {"photo-lite0-finetune": 900}, "budget": 60}, FROZEN),
        ({"side": 150, "weights": False}, ["cpu-cnn", "cpu-resnet", "cpu-effnet"]),
        ({"speeds": {"speed-wide": 5000, "speed": 9000}}, ["speed-air"]),  # a GPU: the wide net, airbench's training
        ({"speeds": {"speed-wide": 5000, "speed": 9000}, "images": 20_000}, ["speed-wide", "cpu-cnn", "cpu-resnet"]),
        ({"speeds": {"speed-wide": 250, "speed": 900}}, ["speed"]),  # a 2-core CPU: the narrow one
        ({"speeds": {"speed-wide": 250, "speed": 900}, "images": 1000}, ["speed-wide", "cpu-cnn", "cpu-resnet"]),
        ({"speeds": {"speed-wide": 250, "speed": 2000}, "budget": 3600}, ["speed"]),  # 1 h over 5 folds: 9.6 min
        ({"speeds": {"speed-wide": 250, "speed": 2000}, "budget": 4 * 3600}, ["speed-air"]),
        ({"speeds": {"speed-wide": 250, "speed": 2000}, "budget": 3600, "folds": 1}, ["speed-air"]),  # FOLDS=0: 48 min
        ({"speeds": {"speed-wide": 250, "speed": 2000}, "budget": 1200, "folds": 1}, ["speed"]),  # 16 min < 21
    ],
)
def test_the_choice_follows_the_data_and_the_machine(changes, recipes):
    from foldwise.training.choose import choose

    choice = choose(facts(**changes))
    assert choice.recipes == recipes and choice.reasons
    assert all(load_recipe(name).name == name for name in choice.recipes)


def test_folds_to_train_counts_what_the_run_trains():
    from foldwise.training.choose import folds_to_train

    assert folds_to_train("all", 5) == 5 and folds_to_train("all", 5, repeats=3) == 15
    assert folds_to_train("0", 5) == 1 and folds_to_train("0,2", 10) == 2


def test_foldwise_recipes_prints_the_facts_and_why(tiny_comp, tmp_path, capsys, monkeypatch):
    """On the tiny digits: small grey images, the speed nets probed here; on larger colour photos the pretrained
    set, or the scratch set when no weights are reachable offline."""
    from PIL import Image

    from foldwise.cli import main
    from foldwise.data.formats import load_competition
    from foldwise.training import choose

    assert main(["recipes", str(tiny_comp)]) == 0
    printed = capsys.readouterr().out
    assert "colour: False" in printed and "side: 8" in printed and "why: " in printed
    chosen = printed.split("recipes: ")[1].split("\n")[0].split()
    assert chosen[-2:] == ["cpu-cnn", "cpu-resnet"] and chosen[0] in ("speed", "speed-wide")

    big = tmp_path / "input" / "big"
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("a", "b"):
            (big / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (96, 80), (i * 50, 90, 0)).save(big / split / cls / f"{i}.jpg")
    comp = load_competition(big)
    assert choose.is_colour(comp.train_images)
    monkeypatch.setattr(choose, "speed_of", lambda name, comp, device: 50.0)  # 4 images: the fine-tune fits
    assert choose.default_recipes(comp) == [*choose.PHOTO_RECIPES, choose.FINETUNE_RECIPE]  # lite packages installed
    monkeypatch.setattr(choose, "photo_weights_reachable", lambda: False)
    assert choose.default_recipes(comp) == list(choose.SCRATCH_RECIPES)
