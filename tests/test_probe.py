"""The speed probe (training/probe.py): the fastest measured format wins, results are cached, fixed settings narrow
the formats tried, a clearly slower format stops early (and is not timed on inference), and a probe batch stays
small on a CPU."""

from __future__ import annotations

import time

import pytest
import torch

from foldwise.config import load_recipe
from foldwise.training import probe as probe_module
from foldwise.training.probe import probe, probe_batch, resolved, timed

CPU = torch.device("cpu")


def fake_measure(speeds: dict, calls: list):
    """A stand-in for one format's measurement: fixed (training, inference) img/s per (bf16, channels_last)."""

    def measure(recipe, device, classes, bf16, channels_last, best=0.0):
        calls.append((bf16, channels_last))
        return speeds[(bf16, channels_last)]

    return measure


def test_the_fastest_format_is_chosen_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("FOLDWISE_CACHE", str(tmp_path))
    speeds = {(False, False): (600.0, 2000.0), (False, True): (1010.0, 3000.0), (True, False): (500.0, 900.0)}
    speeds[(True, True)] = (860.0, 2500.0)  # the Intel dev machine's pattern: bf16 + channels_last is not the best
    calls = []
    monkeypatch.setattr(probe_module, "measure", fake_measure(speeds, calls))
    recipe = load_recipe("speed", ["run.bf16=auto", "run.channels_last=auto", "data.image_size=32"])
    speed = probe(recipe, CPU, 10)
    assert (speed.bf16, speed.channels_last, speed.train_ips, speed.infer_ips) == (False, True, 1010.0, 3000.0)
    assert speed.formats == {"fp32": 600.0, "fp32+cl": 1010.0, "bf16": 500.0, "bf16+cl": 860.0}
    assert len(calls) == 4
    assert probe(recipe, CPU, 10) == speed and len(calls) == 4  # cached: no second measurement
    probe(recipe, CPU, 7)
    assert len(calls) == 8  # another head size is another key
    chosen = resolved(recipe, CPU, 10)
    assert (chosen.run.bf16, chosen.run.channels_last) == (False, True)


def test_fixed_settings_narrow_the_formats(monkeypatch, tmp_path):
    monkeypatch.setenv("FOLDWISE_CACHE", str(tmp_path))
    speeds = {(False, False): (600.0, 2000.0), (False, True): (400.0, 3000.0), (True, True): (9e9, 9e9)}
    calls = []
    monkeypatch.setattr(probe_module, "measure", fake_measure(speeds, calls))
    recipe = load_recipe("speed", ["run.bf16=false", "run.channels_last=auto", "data.image_size=32"])
    chosen = resolved(recipe, CPU, 10)
    assert sorted(calls) == [(False, False), (False, True)]
    assert (chosen.run.bf16, chosen.run.channels_last) == (False, False)
    fixed = load_recipe("speed", ["run.bf16=false", "run.channels_last=true"])
    assert resolved(fixed, CPU, 10) is fixed and len(calls) == 2  # nothing to decide: no probe


def test_a_clearly_slower_format_stops_after_its_warm_up():
    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.05)

    assert timed(slow, budget=1.0, beaten=0.001) >= 0.05
    assert len(calls) == 1  # the warm-up alone showed it: no timed calls
    calls.clear()
    assert timed(slow, budget=0.12, beaten=1.0) == pytest.approx(0.05, rel=0.5)
    assert len(calls) >= 3  # warm-up + at least 2 timed calls


@pytest.mark.parametrize(
    ("overrides", "device", "batch"),
    [
        (["data.image_size=32", "data.batch_size=256"], "cpu", 256),
        (["data.image_size=64", "data.batch_size=256"], "cpu", 64),
        (["data.image_size=224", "data.batch_size=32"], "cpu", 8),
        (["data.image_size=128", "data.batch_size=32"], "cpu", 16),
        (["data.image_size=16", "data.batch_size=12"], "cpu", 12),
        (["data.image_size=224", "data.batch_size=512"], "cuda", 256),
    ],
)
def test_probe_batches_fill_a_cpu_without_minutes_per_step(overrides, device, batch):
    assert probe_batch(load_recipe("speed", overrides), torch.device(device)) == batch


def test_a_far_slower_format_stops_after_a_step_on_a_slice_of_the_batch(monkeypatch):
    def not_timed(*args, **kwargs):
        raise AssertionError("the full batch was timed")

    monkeypatch.setattr(probe_module, "timed", not_timed)
    recipe = load_recipe("cpu-cnn", ["data.image_size=8", "data.batch_size=64"])
    train, infer = probe_module.measure(recipe, CPU, 10, False, False, best=1e12)
    assert 0 < train < 1e12 and infer == 0.0


def test_a_format_slower_in_training_is_not_timed_on_inference(monkeypatch):
    monkeypatch.setattr(probe_module, "TIMED_SECONDS", 0.05)
    monkeypatch.setattr(probe_module, "SCOUT_SHARE", 1000)  # no slice step: the full batch decides
    recipe = load_recipe("cpu-cnn", ["data.image_size=8", "data.batch_size=64"])
    train, infer = probe_module.measure(recipe, CPU, 10, False, False, best=1e12)
    assert train > 0 and infer == 0.0
    train, infer = probe_module.measure(recipe, CPU, 10, False, False)
    assert train > 0 and infer > 0


def test_a_real_probe_measures_every_format(monkeypatch, tmp_path):
    monkeypatch.setenv("FOLDWISE_CACHE", str(tmp_path))
    recipe = load_recipe("cpu-cnn", ["run.bf16=auto", "run.channels_last=auto", "data.image_size=8"])
    monkeypatch.setattr(probe_module, "TIMED_SECONDS", 0.05)
    speed = probe(recipe, CPU, 10)
    assert set(speed.formats) == {"fp32", "fp32+cl", "bf16", "bf16+cl"}
    assert round(speed.train_ips, 1) == max(speed.formats.values()) > 0 and speed.infer_ips > 0


def test_the_slice_step_runs_once_a_format_was_measured(monkeypatch):
    """The first format has nothing to beat; later ones are tried on a slice first (on a CPU: on a GPU a small
    batch takes about as long as a full one, and scaling it up would reject every later format)."""
    sliced = []
    monkeypatch.setattr(probe_module, "scouted", lambda step, batch: sliced.append(batch))
    monkeypatch.setattr(probe_module, "TIMED_SECONDS", 0.05)
    recipe = load_recipe("cpu-cnn", ["data.image_size=8", "data.batch_size=64"])
    probe_module.measure(recipe, CPU, 10, False, False, best=1.0)
    assert sliced == [64]
    probe_module.measure(recipe, CPU, 10, False, False)  # nothing measured before it: nothing to beat
    assert sliced == [64]
