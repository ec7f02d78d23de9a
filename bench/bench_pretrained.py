"""ImageNet-pretrained vs from-scratch EfficientNet-Lite0 on real CIFAR-10 JPEGs, at an equal CPU-time budget each.

    python bench/bench_pretrained.py [--minutes 4 | --steps N] [--size 64] [--workdir DIR] [--recipes A.yaml B.yaml]

Unpacks ../shared/data/cifar10-mini.tar.gz (4,000 labeled images in train/<class>/, 1,000 unlabeled in test/,
solution.csv), trains each recipe (default: configs/effnet-lite0-finetune.yaml, configs/effnet-lite0-scratch.yaml)
on all 4,000 labeled images until it has used --minutes of this process's CPU time (all threads; other jobs on the
machine then cost neither model), and prints the accuracy of each on the 1,000 test images against solution.csv.
The learning rate follows the recipe's warmup + cosine over the budget's elapsed fraction instead of over epochs,
so every run ends annealed however many steps it got; the loop uses the recipe's crop/flip and label smoothing
(not mixup or random erasing). foldwise's own pieces do the rest: load_competition, cached_images, create_model (the
recipes' pretrained_file), Batcher augmentation, timm's optimizer via foldwise.optim, Trainer.predict.

Other jobs on a 2-core machine slow torch's spinning OpenMP threads down far more than their share (measured: 10 vs
~80 img/s), so the load average is printed with each result; `--steps N` gives both recipes the same number of
optimizer steps instead (the same work: same network, same image size) when the machine is shared.
"""

from __future__ import annotations

import argparse
import math
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from foldwise.cache import cached_images
from foldwise.competition import load_competition
from foldwise.config import Recipe, load_recipe
from foldwise.engine import Batcher, Trainer
from foldwise.models import create_model, normalization
from foldwise.optim import create_optimizer_and_scheduler

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-mini.tar.gz"
RECIPES = [REPO / "configs" / "effnet-lite0-finetune.yaml", REPO / "configs" / "effnet-lite0-scratch.yaml"]


def unpack(workdir: Path) -> Path:
    """cifar10-mini/ under workdir (unpacked once)."""
    root = workdir / "cifar10-mini"
    if not (root / "solution.csv").exists():
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(workdir, filter="data")
    return root


def budget_lr(frac: float, peak: float, warmup: float, start_ratio: float) -> float:
    """Linear warmup over the first `warmup` fraction of the budget, then cosine to 0 at frac = 1."""
    if frac < warmup:
        return peak * (start_ratio + (1 - start_ratio) * frac / warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warmup) / (1 - warmup))))


def train_for(
    recipe: Recipe, images: np.ndarray, labels: torch.Tensor, cpu_seconds: float, steps_budget: int, classes: int
):
    """Train on every labeled image for `steps_budget` steps if set, else `cpu_seconds` of process time."""
    torch.manual_seed(recipe.run.seed)
    generator = torch.Generator().manual_seed(recipe.run.seed)
    device = torch.device("cpu")
    model = create_model(recipe.model, classes)
    if recipe.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization(model))
    batcher = Batcher(torch.from_numpy(np.array(images)), mean, std, device, recipe.run.channels_last)
    bs, data, optim = recipe.data.batch_size, recipe.data, recipe.optim
    optimizer, scheduler = create_optimizer_and_scheduler(model, optim, len(images) // bs)
    trainer = Trainer(model, optimizer, scheduler, batcher, labels, recipe, classes, bf16=False)
    warmup = min(0.5, optim.warmup_epochs / max(optim.epochs, 1))  # the recipe's warmup share of its schedule
    model.train()
    steps, cpu0, wall0, losses = 0, time.process_time(), time.perf_counter(), []
    while (frac := steps / steps_budget if steps_budget else (time.process_time() - cpu0) / cpu_seconds) < 1:
        if steps % (len(images) // bs) == 0:
            order = torch.randperm(len(images), generator=generator)
        index = order[(steps % (len(images) // bs)) * bs :][:bs]
        for group in optimizer.param_groups:
            group["lr"] = budget_lr(frac, optim.lr, warmup, optim.warmup_ratio)
        x = batcher.model_input(index, data.crop_padding, data.hflip, generator=generator)
        loss = F.cross_entropy(model(x), labels[index], label_smoothing=optim.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        losses.append(float(loss.detach()))
    wall = time.perf_counter() - wall0
    stats = {"steps": steps, "epochs": steps * bs / len(images), "img_per_wall_s": steps * bs / wall,
             "wall_min": wall / 60, "cpu_min": (time.process_time() - cpu0) / 60,
             "final_loss": float(np.mean(losses[-20:]))}  # fmt: skip
    return trainer, stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0, help="CPU minutes (process time, all threads) per recipe")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps per recipe instead of --minutes")
    p.add_argument("--size", type=int, default=0, help="px; 0 = each recipe's data.image_size")
    p.add_argument("--workdir", type=Path, help="where to unpack and cache (default: a temp dir, removed after)")
    p.add_argument("--recipes", type=Path, nargs="+", default=RECIPES)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        comp = load_competition(unpack(workdir))
        solution = pd.read_csv(comp.solution_path).set_index("id")["label"]
        truth = np.array([comp.classes.index(solution[i]) for i in comp.test_ids])
        labels = torch.tensor(comp.train_labels, dtype=torch.long)
        print(f"cifar10-mini: {len(comp.train_ids)} train / {len(comp.test_ids)} test images, {len(comp.classes)} "
              f"classes; {f'{args.steps} steps' if args.steps else f'{args.minutes:g} CPU min'} per recipe, "
              f"torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        for path in args.recipes:
            overrides = [f"data.image_size={args.size}"] if args.size else []
            recipe = load_recipe(path, overrides)
            size = recipe.data.image_size
            train = cached_images(comp.train_images, size, workdir / "cache", "train")
            test = cached_images(comp.test_images, size, workdir / "cache", "test")
            trainer, stats = train_for(recipe, train, labels, args.minutes * 60, args.steps, len(comp.classes))
            trainer.batcher.images = torch.from_numpy(np.array(test))
            logits = trainer.predict(torch.arange(len(test)), desc="test")
            acc = float((logits.argmax(1) == truth).mean())
            print(f"{recipe.name:>22} {size}px: test accuracy {acc:.3f}  ({stats['steps']} steps = "
                  f"{stats['epochs']:.1f} epochs, {stats['img_per_wall_s']:.0f} img/s, {stats['cpu_min']:.1f} CPU / "
                  f"{stats['wall_min']:.1f} wall min, final train loss {stats['final_loss']:.3f}, load average "
                  f"{os.getloadavg()[1]:.1f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
