"""Training throughput of foldwise's tensor path vs a torchvision ImageFolder + DataLoader pipeline, and vs the
model alone, on the same model and the same real JPEGs, as ratios measured in one process (interleaved, repeated).

    python bench/bench_throughput.py [--model foldwise_cnn] [--size 32] [--steps 20] [--repeats 3]

Images: ../shared/data/cifar10-mini.tar.gz (4,000 labeled CIFAR-10 JPEGs, folder layout), unpacked to a temp dir.
Goal (issue: competition-grade training): tensor path >= 0.95x of model-only img/s.
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import timm
import torch
import torchvision
from timm.optim import create_optimizer_v2
from torch.utils.data import DataLoader

import foldwise.training.models  # noqa: F401  (registers foldwise_* models)
from foldwise.config import recipe_from_dict
from foldwise.data.cache import cached_images
from foldwise.data.formats import load_competition
from foldwise.training.engine import Trainer, TrainingSet
from foldwise.training.inputs import ResidentImages

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-mini.tar.gz"


def new_model(name: str):
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=10).to(memory_format=torch.channels_last)


def same_optimizer(model):
    """The optimizer the tensor path uses (timm's factory, recipe defaults), so only the input pipeline differs."""
    return create_optimizer_v2(model, opt="sgd", lr=0.1, weight_decay=5e-4, momentum=0.9)


def model_only(args, _comp, _cache) -> float:
    """Forward + backward + step on one pre-made, normalized batch: the ceiling for any input pipeline."""
    model = new_model(args.model)
    opt = same_optimizer(model)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return args.steps * args.batch / (time.perf_counter() - start)


def tensor_path(args, comp, cache) -> float:
    """foldwise: uint8 cache in memory, batched crop/flip + normalization, the Trainer's step."""
    recipe = recipe_from_dict({"model": {"name": args.model}, "data": {"image_size": args.size,
                               "batch_size": args.batch}, "run": {"bf16": False}}, name="bench")  # fmt: skip
    images = torch.from_numpy(cached_images(comp.train_images, args.size, cache, "train")[:].copy())
    model = new_model(args.model)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    inputs = ResidentImages(images, mean, std, channels_last=True, augment=recipe.data)
    rows = torch.arange(args.steps * args.batch) % len(images)
    data = TrainingSet(inputs, torch.tensor(comp.train_labels), rows, 10, rows)
    trainer = Trainer(model, recipe, data, epochs=1, bf16=False)
    start = time.perf_counter()
    trainer.train_epoch(torch.Generator().manual_seed(0), desc="tensor path")
    return args.steps * args.batch / (time.perf_counter() - start)


def imagefolder_path(args, comp, _cache) -> float:
    """torchvision ImageFolder + PIL transforms + DataLoader(2 workers): the usual hand-written baseline."""
    t = torchvision.transforms
    transform = t.Compose([t.Resize(args.size), t.RandomCrop(args.size, padding=4), t.RandomHorizontalFlip(),
                           t.ToTensor(), t.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])  # fmt: skip
    data = torchvision.datasets.ImageFolder(comp.root / "train", transform=transform)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, num_workers=2, drop_last=True,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))  # fmt: skip
    model = new_model(args.model)
    opt = same_optimizer(model)
    done, start = 0, time.perf_counter()
    while done < args.steps:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == args.steps:
                break
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="foldwise_cnn")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(DATA) as tar:
            tar.extractall(tmp, filter="data")
        comp = load_competition(Path(tmp) / "cifar10-mini")
        cache = Path(tmp) / "cache"
        cached_images(comp.train_images, args.size, cache, "train")  # decode once, outside the timings
        variants = {"model only": model_only, "tensor path": tensor_path, "ImageFolder+DataLoader": imagefolder_path}
        results = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, fn in variants.items():
                results[name].append(fn(args, comp, cache))
    print(f"{args.model} {args.size}px batch {args.batch}, {args.steps} steps x {args.repeats} repeats, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    base = statistics.median(results["model only"])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:>24}: {med:7.0f} img/s  ratio to model-only {med / base:5.2f}x")
    ratio = statistics.median(results["tensor path"]) / statistics.median(results["ImageFolder+DataLoader"])
    print(f"tensor path vs ImageFolder+DataLoader: {ratio:.2f}x")


if __name__ == "__main__":
    main()
