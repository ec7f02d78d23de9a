"""torchrun support: one process per device, PyTorch DDP for the gradients, rank 0 writes the files.

    torchrun --nproc_per_node 2 -m foldwise train input/<comp> -c configs/resnet34.yaml --fold 0

On CPU the gloo backend is used (how the tests run it), on CUDA nccl, each rank on cuda:LOCAL_RANK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs epochs and writes artifacts."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.enabled:
            dist.barrier()


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun job described by the environment (once per process); single-process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank)


def local_device(device: torch.device, job: Dist) -> torch.device:
    """Each rank's own GPU under torchrun; the CPU stays the CPU."""
    if job.enabled and device.type == "cuda":
        torch.cuda.set_device(job.local_rank)
        return torch.device("cuda", job.local_rank)
    return device


def shard(rows: torch.Tensor, job: Dist) -> torch.Tensor:
    """This rank's rows: every world-th row starting at its rank."""
    return rows[job.rank :: job.world]


def gather_sharded(local: torch.Tensor, total: int, job: Dist) -> torch.Tensor:
    """Inverse of `shard` for per-row results: all ranks' rows, back in the original order."""
    if not job.enabled:
        return local
    per_rank = -(-total // job.world)
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(job.world)]
    dist.all_gather(parts, padded)
    out = torch.stack(parts, dim=1).reshape(per_rank * job.world, *local.shape[1:])  # row j*world + r from rank r
    return out[:total]


def mean_across(value: torch.Tensor, job: Dist) -> float:
    """The mean over all ranks of a per-rank scalar tensor, reduced on the tensor's own device (nccl reduces only
    CUDA tensors, gloo CPU ones)."""
    if job.enabled:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= job.world
    return float(value)
