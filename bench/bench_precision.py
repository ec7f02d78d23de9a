"""Training-step throughput of fp32 vs channels_last vs bf16 autocast vs both, as ratios to fp32 in one process.

    python bench/bench_precision.py [--model foldwise_cnn] [--size 16] [--batch 128] [--repeats 3]

Decides the recipes' `run.bf16` / `run.channels_last` defaults. Measured on this project's 2-core dev
machine (AMD EPYC exposing AVX2 only, no AVX512-BF16): see README "Performance notes".
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import foldwise.training.models  # noqa: F401  (registers foldwise_* models in timm)

VARIANTS = {"fp32": (False, False), "channels_last": (True, False), "bf16": (False, True), "bf16+cl": (True, True)}


def steps_per_second(model_name: str, size: int, batch: int, channels_last: bool, bf16: bool, steps: int) -> float:
    """Optimizer steps per second of one configuration after two warm-up steps."""
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=10)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="foldwise_cnn")
    p.add_argument("--size", type=int, default=16, help="image side in px")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median ratio is printed")
    args = p.parse_args()
    print(f"{args.model} {args.size}px batch {args.batch}, torch {torch.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}, "
          f"native bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")  # fmt: skip
    results = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):  # interleave so machine noise hits every variant alike
        for name, (cl, bf16) in VARIANTS.items():
            results[name].append(steps_per_second(args.model, args.size, args.batch, cl, bf16, args.steps))
    base = statistics.median(results["fp32"])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:>14}: {med * args.batch:8.0f} img/s  ratio to fp32 {med / base:5.2f}x")


if __name__ == "__main__":
    main()
