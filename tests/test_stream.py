"""The streaming path (albumentations in DataLoader workers over the memory-mapped cache), and how it is chosen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_recipe
from foldwise.config import DataConfig
from foldwise.data.folds import make_folds, write_folds
from foldwise.data.formats import load_competition
from foldwise.training.augment import to_model_input
from foldwise.training.inputs import StreamedImages
from foldwise.training.stream import batches, choose_pipeline
from foldwise.training.train import train_run
from foldwise.workspace import Workspace


def test_auto_pipeline_streams_only_when_images_would_not_fit(monkeypatch):
    """auto: resident while the uint8 images take under 40% of free memory; explicit settings always win."""
    cpu = torch.device("cpu")
    monkeypatch.setattr("os.sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": 1000}[name])  # 4 MB
    assert choose_pipeline("auto", 100, 32, cpu) == "tensor"  # 0.3 MB
    assert choose_pipeline("auto", 1000, 32, cpu) == "stream"  # 3 MB
    assert choose_pipeline("tensor", 10**9, 256, cpu) == "tensor"
    with pytest.raises(ValueError, match="auto, tensor or stream"):
        choose_pipeline("disk", 1, 1, cpu)


def test_stream_batches_are_seeded_and_augmented():
    """Worker-side augmentation is reproducible for a seed, differs between seeds, keeps shape and dtype."""
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    labels, rows = torch.arange(40), torch.arange(40).flip(0)
    data = DataConfig(image_size=8, crop_padding=2, hflip=True, random_erasing=0.5)

    def first(seed):
        return next(iter(batches(images, labels, rows, 16, data, seed, pin=False, workers=2)))

    (a, ya), (b, _), (c, _) = first(1), first(1), first(2)
    assert a.dtype == torch.uint8 and a.shape == (16, 8, 8, 3)
    assert ya.tolist() == list(range(39, 23, -1))  # the given row order
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain, _ = next(iter(batches(images, labels, rows, 16, None, 0, pin=False, workers=0)))
    assert torch.equal(plain, torch.from_numpy(images[rows[:16].numpy()]))
    unlabeled = next(iter(batches(images, None, rows, 16, None, 0, pin=False, workers=0)))  # prediction: no labels
    assert torch.equal(unlabeled, plain)


def test_training_on_the_streaming_path(tiny_comp):
    """data.pipeline: stream trains from the memory map, writes the same artifacts, deterministically."""
    ws, comp = Workspace(tiny_comp.parents[1]), load_competition(tiny_comp)
    write_folds(make_folds(comp, k=5, seed=0), ws.folds_csv(comp.name), k=5, seed=0)
    first = train_run(comp, tiny_recipe("s1", data={"pipeline": "stream", "random_erasing": 0.3}), 0, ws)
    again = train_run(comp, tiny_recipe("s2", data={"pipeline": "stream", "random_erasing": 0.3}), 0, ws)
    assert yaml.safe_load((first / "config.yaml").read_text())["pipeline"] == "stream"
    oof = np.load(first / "oof.npz")
    assert len(oof["ids"]) == 20 and np.isfinite(oof["logits"]).all()
    np.testing.assert_array_equal(oof["logits"], np.load(again / "oof.npz")["logits"])
    assert np.load(first / "test.npz")["logits"].shape == (30, 10)


def test_the_streaming_workers_mirror_the_rows_the_alternating_flip_names():
    """data.hflip_alternate on the streaming path: the rows `flips` names are mirrored, the others not, whatever the
    seed (no random flip on top); without `flips` the flips stay random."""
    images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    labels, rows = torch.arange(16), torch.arange(16)
    data = DataConfig(image_size=8, crop_padding=0, hflip=True, hflip_alternate=True)
    flips = torch.arange(16) % 3 == 0
    expected = torch.from_numpy(np.where(flips.numpy()[:, None, None, None], images[:, :, ::-1], images))
    for seed in (1, 2):
        batch, _ = next(iter(batches(images, labels, rows, 16, data, seed, pin=False, workers=0, flips=flips)))
        assert torch.equal(batch, expected)
    random = [next(iter(batches(images, labels, rows, 16, data, s, pin=False, workers=0)))[0] for s in (1, 2)]
    assert not torch.equal(random[0], random[1])
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)  # the input the Trainer gets passes them on too
    streamed = StreamedImages(images, mean, std, False, data)
    x, _ = next(streamed.train_batches(rows, labels, 16, torch.Generator().manual_seed(0), flips=flips))
    assert torch.equal(x, to_model_input(expected, mean, std, False))
