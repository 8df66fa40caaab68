"""Pieces every family's training shares: seeding, gradient switches, the weight average (EMA), the
seeded, sharded order of the training data, and the options of a resumed run.

Batch order: every epoch (a tick, for StyleGAN) draws its order from a generator seeded by (seed, epoch)
alone, so a resumed run sees the order an uninterrupted one would. Under torchrun each process takes every
world_size-th image of the global batch of batch_size * world_size (`shard`), after the epoch is trimmed
to a multiple of world_size so that no rank waits for another: the processes together see the batches
one process would see.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from gencli.runs import OPTIONS_FILE, ResumedRun
from gencli.training.option_files import run_options
from gencli.training.options import TrainingOptions

SEED_STRIDE = 100_003  # epoch generators are seeded with seed * SEED_STRIDE + epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def requires_grad(model: nn.Module, flag: bool, frozen: frozenset[str] = frozenset()) -> None:
    """Switch gradients of `model` on or off; parameters named in `frozen` stay off."""
    for name, p in model.named_parameters():
        p.requires_grad_(flag and name not in frozen)


@torch.no_grad()
def accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for the parameters (torch.optim.swa_utils' EMA update);
    buffers (StyleGAN's w_avg) are copied. The caller chooses the decay of every step, so each family
    keeps its warm-up.

    swa_utils' update function is used on the plain averaged module rather than through AveragedModel:
    AveragedModel would wrap it (state-dict keys `module.*` and `n_averaged` in resume.pt) and copy the
    weights on its first update, which changes what existing runs resume to."""
    get_ema_multi_avg_fn(decay)(list(ema.parameters()), list(model.parameters()), None)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


# --- seeded, sharded batch order ----------------------------------------------------------------------

def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator every random draw of the order of `epoch` comes from."""
    return torch.Generator().manual_seed(seed * SEED_STRIDE + epoch)


def shard(inputs, rank: int, world_size: int):
    """This rank's share, every world_size-th image, of a global batch: a tensor, or a list, tuple or
    dict of them (other values as they are)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[rank::world_size]
    if isinstance(inputs, dict):
        return {k: shard(v, rank, world_size) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(shard(v, rank, world_size) for v in inputs)
    return inputs


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world_size: int = 1,
                     drop_last: bool = False) -> list[torch.Tensor]:
    """Index batches of one epoch over `n` images (VAE): one permutation drawn from (seed, epoch); rank r's
    k-th batch and the other ranks' make the k-th global batch."""
    order = torch.randperm(n, generator=epoch_generator(seed, epoch))
    batches = list(shard(order[: n - n % world_size], rank, world_size).split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def epoch_indices(n_a: int, n_b: int, batch_size: int, seed: int, epoch: int, *, crop_range: int = 1,
                  rank: int = 0, world_size: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """One epoch of (A indices, B indices, A crops, B crops) batches over max(n_a, n_b) images (CycleGAN),
    each domain in its own random order drawn from (seed, epoch) and repeated if it is the smaller one, as
    the reference unaligned loader. A crop is (top, left, flip) with offsets below `crop_range`, drawn with
    the order, so an epoch is the same on resume."""
    g = epoch_generator(seed, epoch)
    n = max(n_a, n_b)

    def order(size: int) -> torch.Tensor:
        return torch.cat([torch.randperm(size, generator=g) for _ in range(math.ceil(n / size))])[:n]

    def crops() -> torch.Tensor:
        return torch.cat([torch.randint(crop_range, (n, 2), generator=g), torch.randint(2, (n, 1), generator=g)], 1)

    columns = [order(n_a), order(n_b), crops(), crops()]
    keep = n - n % world_size
    batches = zip(*(c[:keep].split(batch_size * world_size) for c in columns))
    return [shard(batch, rank, world_size) for batch in batches]


def stream_batches(n: int, batch_size: int, steps: int, seed: int, tick: int) -> list[torch.Tensor]:
    """The `steps` global batches of tick `tick` (1-based, StyleGAN), cut in order from an endless stream of
    shuffled passes over `n` images (pass p shuffled with seed (seed, p)), so any tick is reproducible on
    its own. Each process takes its `shard` of every batch."""
    start, need = (tick - 1) * steps * batch_size, steps * batch_size
    p, offset = divmod(start, n)
    parts, have = [], 0
    while have < need:
        perm = torch.randperm(n, generator=epoch_generator(seed, p))[offset:]
        parts.append(perm)
        have += len(perm)
        p, offset = p + 1, 0
    return list(torch.cat(parts)[:need].split(batch_size))


def resumed_options(run: ResumedRun, options: TrainingOptions, family: str, run_dir: Path) -> TrainingOptions:
    """The options a resumed run trains with: the run's own (its options.json, or for a run of an earlier
    version what that held), with what `options` sets (its set_values) applied, as
    TrainingOptions.resumed has it: a new length, device or precision is taken, any other option must
    equal the run's."""
    where = str(Path(run_dir) / OPTIONS_FILE)
    stored = run_options(type(options), run.options, family, where, config=run.config, metadata=run.metadata,
                         seed=run.seed)
    return stored.resumed(options.set_values(), where)
