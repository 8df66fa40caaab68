"""Where to run: the device (`--device auto|cpu|cuda`), the precision (`--precision auto|fp32|bf16`) and
data-parallel training under torchrun (PyTorch's distributed launcher).

`torchrun --nproc_per_node N -m gencli train ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK in their environment. Each process trains on its own shard of every epoch; gradients are
averaged by DistributedDataParallel; rank 0 alone writes checkpoints, metrics, figures and progress.
Without those variables everything here is a no-op and training runs in one process.
"""

from __future__ import annotations

import contextlib
import os
import warnings
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


PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # fp16 (CUDA, no loss scaling) is for inference only


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic runs in hardware: CUDA GPUs that support it, or x86 CPUs with AVX512-BF16
    or AMX (elsewhere oneDNN emulates bf16, many times slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(name: str, device: torch.device) -> tuple[str, str]:
    """`auto` -> bf16 autocast where the hardware computes bf16 natively, fp32 elsewhere; (choice, why).
    Other names are returned as they are (the caller checks which it supports)."""
    if name != "auto":
        return name, "asked for"
    if native_bf16(device):
        what = "CUDA GPU" if device.type == "cuda" else "CPU with native bf16 (AVX512-BF16 or AMX)"
        return "bf16", f"auto: {what}"
    return "fp32", f"auto: no native bf16 on this {device.type.upper()}"


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision: none for fp32, else bf16 or fp16 autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


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

    # A gradient of shape (1, C) (StyleGAN's D output layer) comes out with strides (1, 1), its bucket view
    # with (C, 1): the same memory layout, which DDP copies over with a warning per process. Nothing to
    # tell the user.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
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
