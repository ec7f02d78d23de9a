"""Shared fixtures: tiny competitions made from sklearn's bundled digits (real images, no download)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from foldwise.config import recipe_from_dict
from foldwise.data.demo import write_competition

CLASSES = [str(c) for c in range(10)]


def pytest_configure(config):
    """Under pytest-xdist (tests/run), each worker, and every process it starts, takes its share of the cores as
    torch threads: two workers whose torch pools both spin on all cores slow each other far more than 2x."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def probe_cache(tmp_path_factory):
    """Speed probes (training/probe.py) are cached in a folder of the test session, not the user's home."""
    os.environ["FOLDWISE_CACHE"] = str(tmp_path_factory.mktemp("foldwise-cache"))
    yield


def digit_arrays(per_class: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` real 8x8 digit images of every class (uint8), starting at the class's `offset`-th image."""
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    rows = np.concatenate([np.flatnonzero(digits.target == c)[offset : offset + per_class] for c in range(10)])
    return images[rows], digits.target[rows]


def make_tiny_competition(root: Path, per_class: int = 10, test_per_class: int = 3) -> Path:
    """A csv-layout competition: per_class*10 labeled images, test_per_class*10 unlabeled, with solution.csv."""
    return write_competition(
        root, digit_arrays(per_class), digit_arrays(test_per_class, offset=per_class), CLASSES, "t"
    )


@pytest.fixture
def tiny_comp(tmp_path: Path) -> Path:
    """input/tiny under a fresh workspace root (tmp_path): 100 train, 30 test images."""
    return make_tiny_competition(tmp_path / "input" / "tiny")


@pytest.fixture
def ready(tiny_comp):
    """The tiny competition with 5 folds written (seed 0), and its workspace."""
    from foldwise.data.folds import make_folds, write_folds
    from foldwise.data.formats import load_competition
    from foldwise.workspace import Workspace

    ws = Workspace(tiny_comp.parents[1])
    comp = load_competition(tiny_comp)
    write_folds(make_folds(comp, k=5, seed=0), ws.folds_csv(comp.name), k=5, seed=0)
    return comp, ws


def tiny_recipe(name: str = "tiny", **sections):
    """A seconds-fast recipe: the small CNN at 8 px for 2 epochs (override any section's keys)."""
    base = {
        "model": {"name": "foldwise_cnn", "kwargs": {"widths": [8, 16, 16]}},
        "data": {"image_size": 8, "batch_size": 16, "eval_batch_size": 64, "crop_padding": 1, "hflip": False},
        "optim": {"name": "sgd", "lr": 0.05, "epochs": 2, "warmup_epochs": 0.5},
        "run": {"seed": 0, "device": "cpu", "bf16": False},
    }
    for key, values in sections.items():
        base[key] = {**base[key], **values}
    return recipe_from_dict(base, name=name)


def reload_run(comp, ws, run_dir: Path, image_size: int):
    """(model.pt reloaded as an eval-mode model, its checkpoint, oof.npz, the plain model input of the OOF rows)."""
    import torch

    from foldwise.config import ModelConfig
    from foldwise.data.cache import cached_images
    from foldwise.training.inputs import ResidentImages
    from foldwise.training.models import create_model

    ckpt = torch.load(run_dir / "model.pt", weights_only=False)
    model = create_model(ModelConfig(**ckpt["recipe"]["model"]), len(comp.classes))
    model.load_state_dict(ckpt["state_dict"])
    oof = np.load(run_dir / "oof.npz")
    row = {id_: i for i, id_ in enumerate(comp.train_ids)}
    images = cached_images(comp.train_images, image_size, ws.cache_dir(comp.name), "train")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (ckpt["mean"], ckpt["std"]))
    inputs = ResidentImages(torch.from_numpy(np.array(images)), mean, std, channels_last=False)
    return model.eval(), ckpt, oof, inputs.gather(torch.tensor([row[i] for i in oof["ids"]]))
