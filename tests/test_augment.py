"""Batched crop/flip on uint8 tensors: shapes, content preserved, seeded."""

from __future__ import annotations

import torch

from foldwise.training.augment import crop_flip, reflect_index, to_model_input


def test_no_padding_no_flip_is_identity():
    """With nothing enabled the batch comes back unchanged."""
    x = torch.randint(0, 255, (4, 6, 6, 3), dtype=torch.uint8)
    assert torch.equal(crop_flip(x, 0, False), x)


def test_flip_mirrors_columns_of_some_images():
    """hflip mirrors whole images (each image either unchanged or exactly mirrored), about half of them."""
    x = torch.randint(0, 255, (64, 5, 7, 3), dtype=torch.uint8)
    out = crop_flip(x, 0, True, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(2)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 10 < int(mirrored.sum()) < 54


def test_given_flips_mirror_exactly_those_images():
    """An alternating flip's per-image choice replaces the coin: the flagged images are mirrored, the rest not."""
    x = torch.randint(0, 255, (6, 5, 7, 3), dtype=torch.uint8)
    flips = torch.tensor([True, False, False, True, True, False])
    out = crop_flip(x, 0, True, torch.Generator().manual_seed(0), flips)
    assert torch.equal(out[flips], x[flips].flip(2)) and torch.equal(out[~flips], x[~flips])


def test_crop_is_a_reflected_translation():
    """Each output is the input shifted by at most `padding` px with reflected borders."""
    x = torch.arange(8 * 8, dtype=torch.uint8).view(1, 8, 8, 1).repeat(16, 1, 1, 3)
    out = crop_flip(x, 2, False, torch.Generator().manual_seed(1))
    for img in out:
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                rows = reflect_index(torch.arange(8) + dy, 8)
                cols = reflect_index(torch.arange(8) + dx, 8)
                found |= torch.equal(img, x[0][rows][:, cols])
        assert found


def test_seeded_generator_repeats():
    """The same generator seed gives the same augmentation."""
    x = torch.randint(0, 255, (8, 8, 8, 3), dtype=torch.uint8)
    a = crop_flip(x, 2, True, torch.Generator().manual_seed(3))
    b = crop_flip(x, 2, True, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_model_input_is_normalized_nchw_channels_last():
    """uint8 NHWC -> float NCHW in channels_last memory, normalized with mean/std."""
    x = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)
    out = to_model_input(x, mean, std, channels_last=True)
    assert out.shape == (2, 3, 4, 4)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, torch.full_like(out, 2.0))
