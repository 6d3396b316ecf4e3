"""Data-parallel training of one run (``torchrun --nproc_per_node=N -m ssvh_bench run ...``).

Under torchrun (``WORLD_SIZE`` > 1 in the environment) ``setup`` joins the process group: NCCL on GPUs (each
rank on ``cuda:LOCAL_RANK``), gloo on the CPU. The training loop then gives each rank its contiguous share
of every global batch of the seeded order, averages the gradients over ranks after each backward pass, and
only rank 0 (the *writer*) writes files. Random draws made per batch row (mask views) are drawn for the
global batch on every rank, from the same seeded generator, and each rank keeps its rows (``batch_rows``), and
contrastive losses gather their items from all ranks with gradients (``gather_rows``), so an N-process run
with per-rank batch B/N computes what a 1-process run with batch B computes. Without torchrun every function
here is the identity of one process.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import numpy as np


def world_size() -> int:
    """The number of processes training together (torchrun's ``WORLD_SIZE``; 1 without torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # not under torchrun: no need to load torch
        return 1
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_initialized() else int(os.environ["WORLD_SIZE"])


def rank() -> int:
    """This process's rank (torchrun's ``RANK`` before the group is joined)."""
    if world_size() == 1:
        return 0
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_writer() -> bool:
    """True in the one process that writes run folders, checkpoints and metrics (rank 0)."""
    return rank() == 0


def setup() -> None:
    """Join torchrun's process group once, if this process was started by torchrun with several ranks."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # "cuda" now means this rank's GPU
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    # Left to the interpreter's exit, the group's threads can still be running when the process ends, which
    # aborts it ("terminate called without an active exception"): leave the group first.
    atexit.register(dist.destroy_process_group)


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable value)."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def batch_rows(n_local: int, blocks: int = 1) -> tuple[int, Any]:
    """(global row count, this rank's rows) for a per-rank tensor of ``n_local`` rows that stacks ``blocks``
    equal groups (e.g. the batch's videos, then their partners); the rows index the global tensor, which
    stacks the same groups of the global batch. Without torchrun: (n_local, every row)."""
    world = world_size()
    if world == 1:
        return n_local, slice(None)
    share = n_local // blocks
    total = share * world
    rows = np.concatenate([np.arange(share) + block * total + rank() * share for block in range(blocks)])
    return n_local * world, rows


def gather_blocks(tensor: Any, blocks: int = 1) -> Any:
    """The global tensor whose rows ``batch_rows`` indexes: every rank's rows, group by group (no gradient)."""
    world = world_size()
    if world == 1:
        return tensor
    import torch
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous())
    share = len(tensor) // blocks
    return torch.cat([part[block * share:(block + 1) * share] for block in range(blocks) for part in parts])


def gather_rows(tensor: Any) -> Any:
    """Every rank's ``tensor`` [n, ...] concatenated in rank order [world * n, ...]; gradients flow back to
    each rank's own rows (``torch.distributed.nn.functional.all_gather``)."""
    if world_size() == 1:
        return tensor
    import torch
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()))


def average_gradients(parameters: Any) -> None:
    """Replace each gradient by its mean over ranks (one flat all-reduce)."""
    world = world_size()
    if world == 1:
        return
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def sum_over_ranks(tensor: Any) -> Any:
    """``tensor`` summed over ranks (in place; returned)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


def sync_parameters(model: Any) -> None:
    """Rank 0's parameters and buffers on every rank (they start equal when seeded equally; this makes sure)."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    for tensor in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(tensor.data, src=0)


def shard_range(n: int) -> range:
    """This rank's contiguous share of ``n`` items (for encoding), as equal as possible."""
    bounds = np.linspace(0, n, world_size() + 1).round().astype(int)
    return range(int(bounds[rank()]), int(bounds[rank() + 1]))


def gather_arrays(array: np.ndarray) -> np.ndarray:
    """Every rank's ``array`` concatenated in rank order (rows of different counts allowed)."""
    if world_size() == 1:
        return array
    import torch.distributed as dist

    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)
