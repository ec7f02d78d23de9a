"""The GPU path, proven: the checks only a CUDA machine can answer, in one table.

    python bench/gpu_proof.py                        # on a CUDA machine: every check, ~6 minutes on one H100/H200
    python bench/gpu_proof.py --dry-run              # on the CPU: every check's code path that needs no CUDA
    python bench/gpu_proof.py --cifar data/cifar10-50k.tar.gz --out results/   # + time to 94% on CIFAR-10

Checks: no host sync per training step (torch.cuda.set_sync_debug_mode); a 1-rank nccl group through DDP training,
the loss all-reduce and the OOF gather; SIGKILL-and-resume equality with run.deterministic on and off; bf16 and
BatchNorm dtypes under autocast; `data.pipeline: auto` stable across folds of one process; the streaming path;
run.compile without recompiles; the cached-features path with a model.pt that loads on a CPU-only machine;
`foldwise run --gpus 0` on a small competition; throughput (img/s) of the speed net and resnet18 in each numeric
format; time to 94% holdout accuracy on CIFAR-10 (40k/10k) when the archive is given. Nothing downloads: the data
is sklearn's digits, made into a competition here, and the archive you pass.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
# children import this checkout's source first, and still see packages the caller added (wheels carried to a GPU box)
SRC_PATH = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)

from foldwise.config import recipe_from_dict  # noqa: E402
from foldwise.data.demo import build_digits  # noqa: E402
from foldwise.data.formats import load_competition  # noqa: E402
from foldwise.training.train import train_run  # noqa: E402
from foldwise.workspace import Workspace  # noqa: E402


class Context:
    """Where the checks run: the device, a digits competition with folds, and scratch space."""

    def __init__(self, root: Path, dry_run: bool, cifar: Path | None):
        self.root, self.dry_run, self.cifar = root, dry_run, cifar
        self.cuda = not dry_run and torch.cuda.is_available()
        self.device = "cuda:0" if self.cuda else "cpu"
        self.comp_dir = build_digits(root / "input" / "digits")
        foldwise(root, "folds", str(self.comp_dir), "--no-dedup", "--k", "3")
        self.comp, self.ws = load_competition(self.comp_dir), Workspace(root)

    def recipe(self, name: str, **sections):
        """A small recipe on this device (8 px on a dry run, the digits' own 16 px upscaled otherwise)."""
        base = {
            "model": {"name": "foldwise_cnn", "kwargs": {"widths": [16, 32, 32]}},
            "data": {
                "image_size": 8 if self.dry_run else 16,
                "batch_size": 64,
                "eval_batch_size": 256,
                "crop_padding": 1,
                "hflip": False,
            },
            "optim": {"name": "sgd", "lr": 0.05, "epochs": 2 if self.dry_run else 4, "warmup_epochs": 0.5},
            "run": {"seed": 0, "device": self.device, "bf16": "auto"},
        }
        for key, values in sections.items():
            base[key] = {**base[key], **values}
        return recipe_from_dict(base, name=name)

    def recipe_file(self, name: str, **sections) -> Path:
        data = self.recipe(name, **sections).to_dict()
        data.pop("name")
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path


def foldwise(root: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m foldwise --root ROOT ...` with this checkout's source."""
    env = dict(os.environ, PYTHONPATH=SRC_PATH, **(env or {}))
    command = [sys.executable, "-m", "foldwise", "--root", str(root), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result


def check_no_host_sync(ctx: Context) -> str:
    """Whole training epochs (Trainer.train_epoch: order, gather, augment, step, loss sum) with CUDA's sync debug
    mode warning on each host sync: the count must not grow with the number of steps (per-epoch setup is fine)."""
    from foldwise.training.engine import Trainer, TrainingSet
    from foldwise.training.inputs import ResidentImages
    from foldwise.training.models import create_model

    recipe = ctx.recipe("sync", data={"hflip": True})  # the device-side flip draw too
    device = torch.device(ctx.device)
    images = torch.randint(0, 255, (2048, 16, 16, 3), dtype=torch.uint8, device=device)
    mean = torch.zeros(1, 3, 1, 1, device=device)
    inputs = ResidentImages(images, mean, torch.ones_like(mean), True, recipe.data)
    labels = torch.randint(0, 10, (2048,))
    model = create_model(recipe.model, 10).to(device).to(memory_format=torch.channels_last)

    def syncs(rows: int) -> int:
        """Host syncs CUDA reports during one epoch over `rows` rows (batches of 64); the CPU reports none."""
        data = TrainingSet(inputs, labels, torch.arange(rows), 10, torch.arange(rows))
        trainer = Trainer(model, recipe, data, epochs=1, bf16=False)
        trainer.train_epoch(torch.Generator().manual_seed(0))  # warm-up: allocator, cuDNN choices
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if ctx.cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                float(torch.ones((), device=device))  # one known sync: proves the warnings are seen here
                control = len(seen)
                trainer.train_epoch(torch.Generator().manual_seed(1))
            finally:
                if ctx.cuda:
                    torch.cuda.set_sync_debug_mode("default")
        assert control == 1 or not ctx.cuda, f"a known host sync gave {control} warnings: sync debug mode not seen"
        return sum("synchronizing" in str(w.message) for w in seen[control:])

    few, many = syncs(512), syncs(2048)
    assert many <= few, f"host syncs grow with the steps: {few} in 8 steps, {many} in 32"
    if not ctx.cuda:
        return "dry run: the tensor-path epochs ran (sync debug mode needs CUDA)"
    return f"host syncs per epoch: {few} at 8 steps, {many} at 32 steps (setup and the epoch's loss, none per step)"


class OneRank:
    """A one-process job that still takes the distributed code paths (DDP, all-reduce, all-gather)."""

    rank, world, local_rank, enabled, is_main = 0, 1, 0, True, True

    def barrier(self) -> None:
        torch.distributed.barrier()


def check_nccl_group(ctx: Context) -> str:
    """A 1-rank process group (nccl on CUDA, gloo on the CPU) through DDP training, the loss mean and the gather."""
    import torch.distributed as dist

    from foldwise.training.distributed import gather_sharded, mean_across
    from foldwise.training.engine import Trainer, TrainingSet
    from foldwise.training.inputs import ResidentImages
    from foldwise.training.models import create_model

    backend = "nccl" if ctx.cuda else "gloo"
    store = dist.FileStore(str(ctx.root / "store"), 1)
    dist.init_process_group(backend, store=store, rank=0, world_size=1)
    try:
        device, recipe = torch.device(ctx.device), ctx.recipe("ddp")
        images = torch.randint(0, 255, (512, 8, 8, 3), dtype=torch.uint8, device=device)
        mean = torch.zeros(1, 3, 1, 1, device=device)
        inputs = ResidentImages(images, mean, torch.ones_like(mean), True, recipe.data)
        rows, labels = torch.arange(512), torch.randint(0, 10, (512,))
        model = create_model(recipe.model, 10).to(device)
        trainer = Trainer(model, recipe, TrainingSet(inputs, labels, rows, 10, rows), 1, False, OneRank())
        loss = trainer.train_epoch(torch.Generator().manual_seed(0))
        logits = trainer.predict(inputs, rows[:100])
        same = float(mean_across(torch.tensor(2.5, device=device), OneRank()))
        gathered = gather_sharded(torch.arange(7, device=device)[:, None].float(), 7, OneRank())
    finally:
        dist.destroy_process_group()
    assert logits.shape == (100, 10) and same == 2.5 and gathered.flatten().tolist() == list(range(7))
    return f"{backend}: DDP epoch (loss {loss:.3f}), all-reduce of a {ctx.device} tensor, all-gather: ok"


def killed_and_resumed(ctx: Context, name: str, deterministic: bool) -> float:
    """Max |OOF logit difference| between an uninterrupted fold and one SIGKILLed after its first epoch."""
    # resnet_mini (average pooling) has deterministic CUDA kernels throughout; the max-pooled nets do not
    recipe = ctx.recipe_file(
        name,
        model={"name": "foldwise_resnet_mini", "kwargs": {}},
        optim={"epochs": 3},
        run={"deterministic": deterministic},
    )
    whole = ctx.root / "whole"
    foldwise(whole, "folds", str(ctx.comp_dir), "--no-dedup", "--k", "3")
    foldwise(whole, "train", str(ctx.comp_dir), "-c", str(recipe), "--fold", "0")
    env = dict(os.environ, PYTHONPATH=SRC_PATH)
    command = [
        sys.executable,
        "-m",
        "foldwise",
        "--root",
        str(ctx.root),
        "train",
        str(ctx.comp_dir),
        "-c",
        str(recipe),
        "--fold",
        "0",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = ctx.root / "output" / "digits" / name / "fold0" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    foldwise(ctx.root, "train", str(ctx.comp_dir), "-c", str(recipe), "--fold", "0")
    a = np.load(whole / "output" / "digits" / name / "fold0" / "oof.npz")["logits"]
    b = np.load(ctx.root / "output" / "digits" / name / "fold0" / "oof.npz")["logits"]
    return float(np.abs(a - b).max())


def check_resume(ctx: Context) -> str:
    """SIGKILL after the first epoch, resume, compare OOF logits with an uninterrupted run."""
    on = killed_and_resumed(ctx, "resume-det", deterministic=True)
    assert on == 0.0, f"deterministic resume differs by {on:.3g}"
    if not ctx.cuda:  # on the CPU both modes are the same kernels; one pair is the code path
        return f"max |OOF difference| with run.deterministic: {on:.3g}"
    off = killed_and_resumed(ctx, "resume-free", deterministic=False)
    return f"max |OOF difference|: run.deterministic on {on:.3g}, off {off:.3g}"


def check_dtypes(ctx: Context) -> str:
    """Under bf16 autocast: convolutions compute in bf16, BatchNorm keeps fp32 parameters and statistics."""
    from foldwise.training.device import autocast, resolve_bf16
    from foldwise.training.models import create_model

    device = torch.device(ctx.device)
    bf16 = resolve_bf16("auto", device)
    model = create_model(ctx.recipe("dtypes").model, 10).to(device).train()
    seen = {}
    model.features[0][0].register_forward_hook(lambda m, i, o: seen.update(conv=o.dtype) and None)
    model.features[0][1].register_forward_hook(lambda m, i, o: seen.update(bn_out=o.dtype) and None)
    with autocast(device, True):
        model(torch.randn(8, 3, 16, 16, device=device))
    bn = model.features[0][1]
    assert bn.weight.dtype == bn.running_mean.dtype == torch.float32
    return f"bf16 auto = {bf16} here; under autocast conv -> {seen['conv']}, BatchNorm params/stats fp32"


def check_pipeline_stable(ctx: Context) -> str:
    """`data.pipeline: auto` picks the same path for every fold of one process, memory the allocator keeps or not."""
    choices = []
    for fold in (0, 1, 2):
        run = train_run(ctx.comp, ctx.recipe("auto-pipeline"), fold, ctx.ws)
        choices.append(yaml.safe_load((run / "config.yaml").read_text())["pipeline"])
    assert len(set(choices)) == 1, choices
    return f"folds 0-2 all took the {choices[0]} path"


def check_streaming(ctx: Context) -> str:
    """The streaming path (DataLoader workers, pinned memory on CUDA) trains and predicts."""
    run = train_run(ctx.comp, ctx.recipe("stream", data={"pipeline": "stream"}), 0, ctx.ws)
    meta = yaml.safe_load((run / "config.yaml").read_text())
    assert meta["pipeline"] == "stream"
    return f"stream path: OOF accuracy {meta['oof_score']['valid_acc']:.3f}"


def check_compile(ctx: Context) -> str:
    """run.compile: the training forward compiles once; no recompiles over the epochs."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compile_ = torch.compile
    if not ctx.cuda:  # the CPU code path with dynamo's capture alone (inductor's C++ build takes a minute here)
        torch.compile = lambda model, **kw: compile_(model, backend="eager", **kw)
    try:
        run = train_run(ctx.comp, ctx.recipe("compiled", run={"compile": True}), 0, ctx.ws)
    finally:
        torch.compile = compile_
    recompiles = sum(torch._dynamo.utils.counters["recompiles"].values())
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert run.exists() and recompiles == 0, f"{recompiles} recompiles"
    return f"{graphs} graph(s) compiled, {recompiles} recompiles"


def check_features_cpu_load(ctx: Context) -> str:
    """The cached-features recipe trains; its model.pt loads in a process that sees no GPU, without map_location."""
    recipe = ctx.recipe(
        "features",
        model={
            "name": "tf_efficientnet_lite0",
            "kwargs": {},
            "pretrained_file": "package:efficientnet_lite0",
            "freeze_backbone": True,
            "cache_features": True,
        },
        data={"image_size": 32, "crop_padding": 0, "tta_hflip": True},
    )
    run = train_run(ctx.comp, recipe, 0, ctx.ws)
    code = (
        f"import torch; s = torch.load({str(run / 'model.pt')!r}, weights_only=False); "
        "assert all(t.device.type == 'cpu' for t in s['state_dict'].values()); print(len(s['state_dict']))"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=SRC_PATH)
    tensors = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return f"model.pt ({tensors.stdout.strip()} tensors) loads on a CPU-only process"


def check_run_gpus(ctx: Context) -> str:
    """`foldwise run --gpus 0` (one fold per GPU, here one GPU) on the digits competition, end to end."""
    recipe = ctx.recipe_file("queue")
    root = ctx.root / "queue"
    gpus = [] if not ctx.cuda else ["--gpus", "0"]
    result = foldwise(root, "run", str(ctx.comp_dir), "-c", str(recipe), "--k", "2", "--no-dedup", *gpus)
    score = [line for line in result.stdout.splitlines() if line.startswith("accuracy")]
    return f"foldwise run {' '.join(gpus) or '(in process)'}: {score[0] if score else 'no key'}"


def throughput(model_name: str, size: int, batch: int, fmt: tuple[bool, bool, bool, bool], device) -> float:
    """Training img/s of one model at one batch size and format (bf16, channels_last, compile, cudnn.benchmark),
    warm-up steps excluded."""
    from foldwise.training.device import autocast
    from foldwise.training.models import create_model

    bf16, channels_last, compiled, benchmark = fmt
    previous, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, benchmark
    model = create_model(recipe_from_dict({"model": {"name": model_name}}, "t").model, 10).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    steps, warm = (2, 1) if device.type == "cpu" else (30, 5)
    try:
        for i in range(steps + warm):
            if i == warm:
                torch.cuda.synchronize() if device.type == "cuda" else None
                start = time.perf_counter()
            with autocast(device, bf16):
                loss = torch.nn.functional.cross_entropy(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize() if device.type == "cuda" else None
    finally:
        torch.backends.cudnn.benchmark = previous
    return steps * batch / (time.perf_counter() - start)


def format_label(fmt: tuple[bool, bool, bool, bool]) -> str:
    """(bf16, channels_last, compile, cudnn.benchmark) as a README column name, e.g. 'bf16+cl+autotune'."""
    bf16, channels_last, compiled, benchmark = fmt
    extras = [name for name, on in (("cl", channels_last), ("compile", compiled), ("autotune", benchmark)) if on]
    return "+".join(["bf16" if bf16 else "fp32", *extras])


def check_throughput(ctx: Context) -> str:
    """img/s of the speed net (32 px) and resnet18 (64 px) in each numeric format, at the speed recipes' batch (256)
    and a GPU-sized one (1024); on CUDA also torch.compile and cuDNN autotuning (cudnn.benchmark)."""
    device, groups = torch.device(ctx.device), []
    formats = [(b, c, False, False) for b in (False, True) for c in (False, True)]
    if ctx.cuda:
        formats += [(False, True, False, True), (True, True, False, True), (True, True, True, False)]
    models = [("foldwise_speednet", 32), ("resnet18", 64)] if ctx.cuda else [("foldwise_cnn", 16)]
    for name, size in models:
        for batch in (256, 1024) if ctx.cuda else (32,):
            cells = [f"{format_label(fmt)} {throughput(name, size, batch, fmt, device):,.0f}" for fmt in formats]
            groups.append(f"{name}@{size}px batch {batch}: " + ", ".join(cells))
    return "; ".join(groups)


def check_time_to_94(ctx: Context) -> str:
    """Fold 0 (32k/8k) of CIFAR-10's 40k labeled images with the speed-air recipe (airbench94's training, 16
    epochs), in bf16 and in fp32: seconds until the holdout first reaches 94% (the per-epoch curve, no TTA), or the
    best it reached."""
    if ctx.cifar is None or ctx.dry_run:
        return "skipped: no --cifar archive given" if ctx.cifar is None else "skipped on a dry run"
    import pandas as pd

    with tarfile.open(ctx.cifar) as tar:
        tar.extractall(ctx.root / "input", filter="data")
    comp = next(p for p in (ctx.root / "input").iterdir() if p.name.startswith("cifar10-50k"))
    results = []
    for label, bf16 in (("bf16", "true"), ("fp32", "false")):
        root = ctx.root / f"cifar-{label}"
        foldwise(root, "folds", str(comp), "--no-dedup")
        start = time.perf_counter()
        sets = ["--set", "optim.epochs=16", "--set", f"run.bf16={bf16}"]
        foldwise(root, "train", str(comp), "-c", "speed-air", "--fold", "0", *sets)
        wall = time.perf_counter() - start
        history = pd.read_csv(root / "output" / comp.name / "speed-air" / "fold0" / "history.csv")
        curve = " ".join(f"{a:.4f}" for a in history["valid_acc"])
        print(f"speed-air {label} per-epoch holdout accuracy: {curve}", flush=True)
        reached = history[history["valid_acc"] >= 0.94]
        if len(reached):
            seconds = history["seconds"].cumsum()[reached.index[0]]
            epoch = int(reached["epoch"].iloc[0])
            results.append(f"{label}: 94% after epoch {epoch}, {seconds:.0f} s of epochs ({wall:.0f} s in all)")
        else:
            best = history["valid_acc"].max()
            results.append(f"{label}: best {best:.4f} in {len(history)} epochs ({wall:.0f} s in all)")
    return "; ".join(results)


CHECKS = [
    ("no host sync per training step", check_no_host_sync),
    ("1-rank process group: DDP train + all-reduce + gather", check_nccl_group),
    ("SIGKILL and resume", check_resume),
    ("bf16 and BatchNorm dtypes", check_dtypes),
    ("data.pipeline auto stable across folds", check_pipeline_stable),
    ("streaming path", check_streaming),
    ("run.compile without recompiles", check_compile),
    ("features path, CPU-loadable model.pt", check_features_cpu_load),
    ("foldwise run --gpus 0", check_run_gpus),
    ("throughput (img/s) by numeric format", check_throughput),
    ("time to 94% on CIFAR-10 (fold 0)", check_time_to_94),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on the CPU: every code path that needs no CUDA")
    parser.add_argument("--cifar", type=Path, help="cifar10-50k.tar.gz, for the time-to-94%% check")
    parser.add_argument("--out", type=Path, help="also write the table to OUT/gpu_proof.md")
    parser.add_argument("--only", help="comma-separated check numbers (1-based) to run")
    args = parser.parse_args()
    wanted = {int(i) for i in args.only.split(",")} if args.only else set(range(1, len(CHECKS) + 1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="foldwise-gpu-proof-") as tmp:
        ctx = Context(Path(tmp), args.dry_run, args.cifar)
        where = torch.cuda.get_device_name(0) if ctx.cuda else "CPU (dry run)"
        for number, (name, check) in enumerate(CHECKS, 1):
            if number not in wanted:
                continue
            start = time.perf_counter()
            try:
                status, detail = "ok", check(ctx)
            except Exception as e:  # noqa: BLE001 (a failed check is a row of the table, not the end of the run)
                status, detail = "FAIL", f"{type(e).__name__}: {e}"
                traceback.print_exc()
            rows.append(f"| {number} | {name} | {status} | {detail} | {time.perf_counter() - start:.0f} s |")
            print(rows[-1], flush=True)
    table = "\n".join(
        [
            f"GPU proof on {where}, torch {torch.__version__}",
            "",
            "| # | check | result | detail | time |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print("\n" + table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_proof.md").write_text(table + "\n")
    return 1 if any("| FAIL |" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
