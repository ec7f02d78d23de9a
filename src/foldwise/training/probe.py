"""Measure, don't assume: a few real training steps and one inference batch of a recipe's model at its image and
batch size, in each numeric format this device offers (fp32 / bf16 autocast x contiguous / channels_last), timed.

`run.bf16: auto` and `run.channels_last: auto` mean the fastest format measured here. Results are cached per machine,
torch version, model, image size and batch size (FOLDWISE_CACHE, default ~/.cache/foldwise/probes.json), so a rerun
does not probe again; the planner (budget.py) reads the same numbers to size a time budget.

Evidence that a flag cannot decide: on one dev machine (Intel, AVX512-BF16, no AMX) bf16 + channels_last ran at
0.85x of fp32 + channels_last for the speed net at 32 px while a flag-based rule chose bf16; on another (AVX2 only)
emulated bf16 was 7x slower.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from foldwise.config import Recipe
from foldwise.fileio import exclusive, write_text_atomic
from foldwise.training.device import autocast, resolve_bf16

log = logging.getLogger(__name__)
TIMED_SECONDS = 1.5  # per format: steps are timed until this much has passed (at least 2 steps)
CPU_PROBE_PIXELS = 64 * 64 * 64  # pixels per CPU probe batch: 256 images of 32 px, 8 of 224 px (a CPU is full at
# either; at batch 64 and 224 px one emulated-bf16 step of EfficientNet-Lite2 took 19 s and the probes 4.6 min, and
# Lite0 feature extraction ran at 18 img/s against 42 at batch 8); feature extraction uses the same batch
SCOUT_SHARE = 8  # a format is first tried on this fraction of the probe batch when another was measured before it
GPU_PROBE_BATCH = 256  # a GPU's throughput depends on the batch: up to the recipe's own


@dataclass(frozen=True)
class Speed:
    """Measured throughput of one recipe's model on this device."""

    bf16: bool
    channels_last: bool
    train_ips: float  # training images per second (forward, backward, optimizer step)
    infer_ips: float  # inference images per second (forward, no grad)
    formats: dict  # "fp32", "fp32+cl", "bf16", "bf16+cl" -> training img/s


def machine() -> str:
    """What the numbers belong to: the GPU's name, or the CPU's model and capability, and the torch version."""
    if torch.cuda.is_available():
        where = torch.cuda.get_device_name(0)
    else:
        cpu = platform.processor() or platform.machine()
        for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        where = f"{cpu} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
    return f"{where}; torch {torch.__version__}"


def cache_path() -> Path:
    """Where probe results are kept across runs and competitions."""
    return Path(os.environ.get("FOLDWISE_CACHE") or Path.home() / ".cache" / "foldwise") / "probes.json"


def probe_key(recipe: Recipe, device: torch.device, classes: int) -> str:
    model = recipe.model
    return json.dumps(
        [
            machine(),
            str(device.type),
            model.name,
            model.kwargs,
            model.small_stem,
            model.cache_features,
            recipe.data.image_size,
            recipe.data.batch_size,
            classes,
        ],
        sort_keys=True,
    )


def formats(device: torch.device, recipe: Recipe) -> list[tuple[bool, bool]]:
    """(bf16, channels_last) pairs to try: fixed settings narrow them, 'auto' tries both."""
    bf16 = [recipe.run.bf16] if isinstance(recipe.run.bf16, bool) else [False, True]
    last = [recipe.run.channels_last] if isinstance(recipe.run.channels_last, bool) else [False, True]
    return [(b, c) for b in bf16 for c in last]


def timed(step, budget: float = TIMED_SECONDS, beaten: float = float("inf")) -> float:
    """Seconds per call of `step` after one warm-up call, over at least 2 calls and about `budget` seconds; a
    format whose warm-up call takes 4x `beaten` (the best so far), or whose timed calls take 2x, stops there."""
    start = time.perf_counter()
    step()
    warm_up = time.perf_counter() - start
    if warm_up > 4 * beaten:  # clearly slower even allowing for the first call's one-time costs
        return warm_up
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < budget:
        step()
        calls += 1
        if calls >= 50 or (time.perf_counter() - start) / calls > 2 * beaten:
            break
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def measure(
    recipe: Recipe, device: torch.device, classes: int, bf16: bool, channels_last: bool, best: float = 0.0
) -> tuple[float, float]:
    """(training img/s, inference img/s) of the recipe's model in one numeric format, on random input; `best` is
    the fastest training img/s measured so far: a format far slower stops early (on a CPU first a step on
    1/SCOUT_SHARE of the batch, scaled up; then the warm-up step, see `timed`), and one slower at all is not timed
    on inference (0.0): it will not be chosen. On an AVX2 CPU, emulated bf16 had made the speed-air probe take 148 s;
    25 s now. A recipe that only extracts features (cache_features) is timed on inference alone, which is all its
    backbone does."""
    from foldwise.training.models import create_model

    model = create_model(recipe.model, classes, load_weights=False).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    size = recipe.data.image_size or 32
    batch = probe_batch(recipe, device)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step(count: int = batch) -> None:
        with autocast(device, bf16):
            loss = torch.nn.functional.cross_entropy(model(x[:count]), y[:count])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step(count: int = batch) -> None:
        with autocast(device, bf16):
            model(x[:count])

    extractor = recipe.model.cache_features
    step = infer_step if extractor else train_step
    model.train(not extractor)
    beaten = batch / best if best else float("inf")
    seconds = scouted(step, batch) if best and device.type == "cpu" else None  # a GPU's small batch is no faster
    if seconds is not None and seconds > 4 * beaten:
        return batch / seconds, batch / seconds if extractor else 0.0
    ips = batch / timed(step, TIMED_SECONDS, beaten)
    if extractor:
        return ips, ips
    if ips < best:
        return ips, 0.0
    model.eval()
    return ips, batch / timed(infer_step, TIMED_SECONDS / 3)


def scouted(step, batch: int) -> float | None:
    """Seconds of a full-batch `step` on a CPU estimated from one call on 1/SCOUT_SHARE of the batch (first-call
    costs included, so it errs slow), or None when that slice would be under 2 images."""
    scout = batch // SCOUT_SHARE
    if scout < 2:
        return None
    start = time.perf_counter()
    step(scout)
    return (time.perf_counter() - start) * batch / scout


def probe_batch(recipe: Recipe, device: torch.device) -> int:
    """Images per probe step: the recipe's batch (its feature-extraction batch for cache_features), on a CPU no more
    than CPU_PROBE_PIXELS of pixels, on a GPU no more than GPU_PROBE_BATCH."""
    data = recipe.data
    wanted = data.eval_batch_size if recipe.model.cache_features else data.batch_size
    if device.type == "cuda":
        return min(wanted, GPU_PROBE_BATCH)
    size = data.image_size or 32
    return max(1, min(wanted, max(8, CPU_PROBE_PIXELS // (size * size))))


def probe(recipe: Recipe, device: torch.device, classes: int) -> Speed:
    """The recipe's measured speed here (cached): the fastest format's training and inference img/s."""
    key, path = probe_key(recipe, device, classes), cache_path()
    with exclusive(path):
        known = json.loads(path.read_text()) if path.exists() else {}
        if key in known:
            return Speed(**known[key])
        results = {}
        for bf16, last in formats(device, recipe):
            best = max((v[0] for v in results.values()), default=0.0)
            results[(bf16, last)] = measure(recipe, device, classes, bf16, last, best)
        (bf16, last), (train_ips, infer_ips) = max(results.items(), key=lambda item: item[1][0])
        names = {(b, c): f"{'bf16' if b else 'fp32'}{'+cl' if c else ''}" for b, c in results}
        speed = Speed(bf16, last, train_ips, infer_ips, {names[f]: round(v[0], 1) for f, v in results.items()})
        known[key] = asdict(speed)
        write_text_atomic(path, json.dumps(known, indent=1) + "\n")
    log.info(
        "probe %s at %d px: %s img/s training -> %s",
        recipe.model.name,
        recipe.data.image_size,
        speed.formats,
        names[(bf16, last)],
    )
    return speed


def resolved(recipe: Recipe, device: torch.device, classes: int) -> Recipe:
    """The recipe with run.bf16 / run.channels_last 'auto' replaced by the fastest format measured here (a probe,
    cached); bf16 stays off where the device cannot compute it at all."""
    run = recipe.run
    if run.bf16 != "auto" and run.channels_last != "auto":
        return recipe
    if run.bf16 == "auto" and not bf16_possible(device):
        run = replace(run, bf16=False)
        recipe = replace(recipe, run=run)
        if run.channels_last != "auto":
            return recipe
    speed = probe(recipe, device, classes)
    bf16 = speed.bf16 if run.bf16 == "auto" else run.bf16
    channels_last = speed.channels_last if run.channels_last == "auto" else run.channels_last
    return replace(recipe, run=replace(run, bf16=bf16, channels_last=channels_last))


def bf16_possible(device: torch.device) -> bool:
    """Whether bf16 autocast runs on this device at all (native or emulated); the probe decides whether it pays."""
    if device.type == "cuda":
        return resolve_bf16("auto", device)  # emulated on older GPUs: never faster
    return device.type == "cpu"
