"""Where to run: the device (`--device auto|cpu|cuda`) and data-parallel training under torchrun
(PyTorch's distributed launcher).

`torchrun --nproc_per_node N -m gencli train ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK in their environment. Each process trains on its own shard of every epoch; gradients are
averaged by DistributedDataParallel; rank 0 alone writes checkpoints, metrics, figures and progress.
Without those variables everything here is a no-op and training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from gencli.errors import GencliError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GencliError("--device cuda was asked for, but no CUDA GPU is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise GencliError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world() -> World:
    """This process's place in the torchrun job (rank 0 of 1 when not launched by torchrun)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo on CPU); each process
    gets its own GPU (cuda:LOCAL_RANK). Returns the device this process trains on."""
    w = world()
    if not w.distributed:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module` in a torchrun job; the module itself otherwise."""
    if not world().distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over the processes of a torchrun job; `t` itself otherwise."""
    if not world().distributed:
        return t
    import torch.distributed as dist

    t = t.clone()
    dist.all_reduce(t)
    return t / world().world_size


def barrier() -> None:
    if world().distributed:
        import torch.distributed as dist

        dist.barrier()


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
