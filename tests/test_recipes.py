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


def test_default_recipes_follow_the_image_size(tiny_comp, tmp_path, capsys):
    """submit.sh with no recipe named: small images get the speed recipe first (plus two other nets to blend),
    larger ones the CPU trio; `foldwise recipes` prints the files, which all exist."""
    from PIL import Image

    from foldwise.cli import main
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import default_recipes

    assert main(["recipes", str(tiny_comp)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == ["speed", "cpu-cnn", "cpu-resnet"] and all(load_recipe(name).name == name for name in printed)

    big = tmp_path / "input" / "big"
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("a", "b"):
            (big / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (96, 80), (i * 50, 0, 0)).save(big / split / cls / f"{i}.jpg")
    assert default_recipes(load_competition(big)) == ["cpu-cnn", "cpu-resnet", "cpu-effnet"]
