"""Every supported layout runs through `bash submit.sh input/<comp>` with no layout-specific flags, end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import make_tiny_competition, tiny_recipe
from test_layouts import make_cifar10, make_cifar100, make_idx, make_intel, make_tin_kaggle, make_tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {
    "csv": lambda root: make_tiny_competition(root, per_class=4, test_per_class=1),
    "cifar10": make_cifar10,
    "cifar100": make_cifar100,
    "tiny-imagenet": make_tiny_imagenet,
    "tiny-imagenet-kaggle": make_tin_kaggle,
    "intel": make_intel,
    "idx": make_idx,
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_submit_sh_on_every_layout(tmp_path, layout):
    """folds -> train -> blend/report -> full -> submission validated against the test ids -> scored by its key."""
    comp = tmp_path / "input" / layout
    comp.mkdir(parents=True)
    LAYOUTS[layout](comp)
    data = tiny_recipe().to_dict()
    data.pop("name")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    env = dict(os.environ, ROOT=str(tmp_path), K="2", FOLDS="0")  # the layout's path end to end; one fold is enough
    result = subprocess.run(["bash", str(REPO / "submit.sh"), str(comp), str(tmp_path / "tiny.yaml")],
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2500:] + result.stderr[-2500:]
    out = tmp_path / "output" / layout
    submission = pd.read_csv(out / "submission.csv", dtype=str)
    assert list(submission.columns) == ["id", "label"] and submission["id"].is_unique and len(submission) > 0
    assert (out / "blend" / "report.html").exists()
    assert "accuracy" in result.stdout.split("== score against")[-1], "a labeled test split must be scored"
