"""Prediction speed on the CPU at the recipes' eval_batch_size against the probe-sized batch foldwise now predicts
in there (`probe.predicting_here`), through the same predict_logits (with the recipe's TTA) on resident images, as
ratios measured in one process (interleaved, repeated).

    python bench/bench_predict_batch.py [--recipes speed-air,speed,cpu-resnet,cpu-cnn] [--images 2048] [--repeats 3]

The images are random uint8 pixels at the size each recipe trains at on these demos (the speed nets at 32 px, the
CPU nets at 16-32 px): a forward pass costs the same whatever the pixels say. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from foldwise.config import load_recipe
from foldwise.training.engine import predict_logits
from foldwise.training.inputs import ResidentImages
from foldwise.training.models import create_model
from foldwise.training.probe import predicting_here

SIZES = {"speed-air": 32, "speed-wide": 32, "speed": 28, "cpu-cnn": 16, "cpu-resnet": 32}


def seconds(model, inputs, data, images: int) -> float:
    start = time.perf_counter()
    predict_logits(model, inputs, torch.arange(images), data, False, 10, desc="bench")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default="speed-air,speed,cpu-resnet,cpu-cnn")
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cpu = torch.device("cpu")
    print(f"{torch.get_num_threads()} threads, {args.images} images, the recipe's TTA views, median of {args.repeats}")
    for name in args.recipes.split(","):
        size = SIZES.get(name, 32)
        recipe = load_recipe(name, [f"data.image_size={size}"])
        here = predicting_here(recipe, cpu).data
        torch.manual_seed(0)
        model = create_model(recipe.model, 10).to(memory_format=torch.channels_last).eval()
        pixels = torch.randint(0, 256, (args.images, size, size, 3), dtype=torch.uint8)
        mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
        inputs = ResidentImages(pixels, mean, std, channels_last=True)
        times = {recipe.data.eval_batch_size: [], here.eval_batch_size: []}
        seconds(model, inputs, here, min(args.images, 256))  # warm-up
        for _ in range(args.repeats):
            for batch in times:
                times[batch].append(seconds(model, inputs, replace(recipe.data, eval_batch_size=batch), args.images))
        old, new = (statistics.median(t) for t in times.values())
        print(f"{name:>11} {size} px: batch {recipe.data.eval_batch_size:>4} {args.images / old:7.0f} img/s, "
              f"batch {here.eval_batch_size:>4} {args.images / new:7.0f} img/s, ratio {old / new:4.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
