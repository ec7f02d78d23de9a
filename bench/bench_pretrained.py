"""ImageNet-pretrained vs from-scratch EfficientNet-Lite0 on real CIFAR-10 JPEGs, at an equal CPU-time budget each.

    python bench/bench_pretrained.py [--minutes 4 | --steps N] [--size 64] [--workdir DIR] [--recipes A.yaml B.yaml]

Unpacks ../shared/data/cifar10-mini.tar.gz (4,000 labeled images in train/<class>/, 1,000 unlabeled in test/,
solution.csv), trains each recipe (default: the packaged effnet-lite0-finetune, effnet-lite0-frozen and
effnet-lite0-scratch recipes) on all 4,000 labeled images until it has used --minutes of this process's CPU
time (all threads), writes each one's test predictions as a submission csv and scores it against solution.csv with
`foldwise score`'s function.

A recipe with `model.cache_features` (the frozen-feature head) runs as `foldwise train --full` does (features of
every image once, then the classifier on them); its CPU time is measured and printed, and is far below the budget.

- The recipes take turns, one optimizer step each, so other jobs on the machine slow them down alike. (Run one after
  the other on the shared 2-core machine, the pretrained one got 128 steps and the scratch one 61 from the same 5
  CPU minutes: torch's spinning OpenMP threads burn CPU time while the other thread waits to be scheduled.)
  `--steps N` gives every recipe N steps instead (the same work: same network, same image size).
- The learning rate follows the recipe's warmup + cosine over the budget's used fraction instead of over epochs, so
  each run ends annealed however many steps it got. The loop applies the recipe's crop/flip and label smoothing
  (not mixup or random erasing).
- foldwise's public pieces do the rest: load_competition, cached_images, create_model (the recipe's
  pretrained_file), normalization, ResidentImages augmentation, the Trainer's optimizer and schedule, Trainer.predict.
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
import torch
import torch.nn.functional as F

from foldwise.blending.formats import submission_frame
from foldwise.blending.submit import score_submission
from foldwise.config import Recipe, load_recipe
from foldwise.data.cache import cached_images
from foldwise.data.competition import Competition
from foldwise.data.folds import make_folds, write_folds
from foldwise.data.formats import load_competition
from foldwise.training.engine import Trainer, TrainingSet
from foldwise.training.inputs import ResidentImages
from foldwise.training.models import create_model, normalization
from foldwise.training.train import train_run
from foldwise.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-mini.tar.gz"
RECIPES = [f"effnet-lite0-{kind}" for kind in ("finetune", "frozen", "scratch")]


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


class BudgetRun:
    """One recipe trained step by step on every labeled image until its budget (CPU seconds or steps) is used."""

    def __init__(self, recipe: Recipe, comp: Competition, workdir: Path, cpu_seconds: float, steps: int) -> None:
        torch.manual_seed(recipe.run.seed)
        self.recipe, self.cpu_budget, self.steps_budget = recipe, cpu_seconds, steps
        size = recipe.data.image_size
        self.train_images = cached_images(comp.train_images, size, workdir / "cache", "train")
        self.test_images = cached_images(comp.test_images, size, workdir / "cache", "test")
        self.labels = torch.tensor(comp.train_labels, dtype=torch.long)
        self.model = create_model(recipe.model, len(comp.classes))
        if recipe.run.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        mean, std = self.normalization = tuple(torch.tensor(v).view(1, 3, 1, 1) for v in normalization(self.model))
        images = torch.from_numpy(np.array(self.train_images))
        self.inputs = ResidentImages(images, mean, std, recipe.run.channels_last, recipe.data)
        self.per_epoch = len(images) // recipe.data.batch_size
        rows = torch.arange(len(images))
        data = TrainingSet(self.inputs, self.labels, rows, len(comp.classes), rows)
        self.trainer = Trainer(self.model, recipe, data, recipe.optim.epochs, bf16=False)
        self.optimizer = self.trainer.optimizer  # stepped here with the budget's own learning rate
        self.warmup = min(0.5, recipe.optim.warmup_epochs / max(recipe.optim.epochs, 1))  # the recipe's warmup share
        self.generator = torch.Generator().manual_seed(recipe.run.seed)
        self.steps, self.cpu, self.wall, self.losses, self.order = 0, 0.0, 0.0, [], None

    @property
    def used(self) -> float:
        """Fraction of the budget spent."""
        return self.steps / self.steps_budget if self.steps_budget else self.cpu / self.cpu_budget

    def step(self) -> None:
        """One optimizer step; its process CPU time and wall time are charged to this run."""
        cpu0, wall0 = time.process_time(), time.perf_counter()
        optim, bs = self.recipe.optim, self.recipe.data.batch_size
        if self.steps % self.per_epoch == 0:
            self.order = torch.randperm(len(self.labels), generator=self.generator)
        index = self.order[(self.steps % self.per_epoch) * bs :][:bs]
        for group in self.optimizer.param_groups:
            group["lr"] = budget_lr(self.used, optim.lr, self.warmup, optim.warmup_ratio)
        self.model.train()
        x = self.inputs.gather(index, self.generator)
        loss = F.cross_entropy(self.model(x), self.labels[index], label_smoothing=optim.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        self.losses.append(float(loss.detach()))
        self.cpu += time.process_time() - cpu0
        self.wall += time.perf_counter() - wall0

    def test_logits(self) -> np.ndarray:
        """The trained model's test logits (Trainer.predict, the recipe's TTA)."""
        test = ResidentImages(
            torch.from_numpy(np.array(self.test_images)), *self.normalization, self.recipe.run.channels_last
        )
        return self.trainer.predict(test, desc="test")

    def summary(self) -> str:
        """Steps, epochs, throughput and time spent."""
        bs = self.recipe.data.batch_size
        return (f"{self.steps} steps = {self.steps * bs / len(self.labels):.1f} epochs, "
                f"{self.steps * bs / self.wall:.0f} img/s, {self.cpu / 60:.1f} CPU / {self.wall / 60:.1f} wall min, "
                f"final train loss {np.mean(self.losses[-20:]):.3f}")  # fmt: skip


class FeatureRun:
    """A frozen-feature recipe trained the way `foldwise train --full` trains it; CPU and wall time measured."""

    def __init__(self, recipe: Recipe, comp: Competition, workdir: Path) -> None:
        self.recipe, self.comp, self.ws = recipe, comp, Workspace(workdir)
        folds = self.ws.folds_csv(comp.name)
        if not folds.exists():
            write_folds(make_folds(comp, k=5, seed=0), folds, k=5, seed=0)
        self.cpu = self.wall = 0.0
        self.used = 1.0  # never stepped by the budget loop

    def run(self) -> None:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        self.run_dir = train_run(self.comp, self.recipe, None, self.ws, force=True)
        self.cpu, self.wall = time.process_time() - cpu0, time.perf_counter() - wall0

    def test_logits(self) -> np.ndarray:
        with np.load(self.run_dir / "test.npz") as f:
            return f["logits"]

    def summary(self) -> str:
        return (f"features once + {self.recipe.optim.epochs} classifier epochs, {self.cpu / 60:.1f} CPU / "
                f"{self.wall / 60:.1f} wall min including feature extraction")  # fmt: skip


def score(comp: Competition, logits: np.ndarray, path: Path) -> float:
    """Write the predictions as a submission csv and score it with `foldwise score`'s function."""
    frame = submission_frame(comp, torch.softmax(torch.from_numpy(logits), 1).numpy())
    frame.to_csv(path, index=False)
    return score_submission(path, comp.solution_path)["accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0, help="CPU minutes (process time, all threads) per recipe")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps per recipe instead of --minutes")
    p.add_argument("--size", type=int, default=0, help="px; 0 = each recipe's data.image_size")
    p.add_argument("--workdir", type=Path, help="where to unpack and cache (default: a temp dir, removed after)")
    p.add_argument("--recipes", nargs="+", default=RECIPES, help="recipe files or packaged names")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        comp = load_competition(unpack(workdir))
        budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} CPU min"
        print(f"cifar10-mini: {len(comp.train_ids)} train / {len(comp.test_ids)} test images, {len(comp.classes)} "
              f"classes; {budget} per recipe, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        overrides = [f"data.image_size={args.size}"] if args.size else []
        recipes = [load_recipe(path, overrides) for path in args.recipes]
        runs = [FeatureRun(r, comp, workdir) if r.model.cache_features
                else BudgetRun(r, comp, workdir, args.minutes * 60, args.steps) for r in recipes]  # fmt: skip
        for run in runs:
            if isinstance(run, FeatureRun):
                run.run()
        while any(run.used < 1 for run in runs):
            for run in runs:
                if run.used < 1:
                    run.step()
        for run in runs:
            acc = score(comp, run.test_logits(), workdir / f"submission-{run.recipe.name}.csv")
            print(f"{run.recipe.name:>22} {run.recipe.data.image_size}px: test accuracy {acc:.3f} by foldwise score "
                  f"({run.summary()})", flush=True)  # fmt: skip
        print(f"load average at the end {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
