"""Data-parallel training of the baselines under ``torchrun`` (DistributedDataParallel).

In: the environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). Out: a :class:`DistContext` and helpers the training
functions call; without ``torchrun`` every helper is a no-op, so plain runs are
unchanged.

Rules:

- backend ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), ``gloo`` on CPU;
- every process loads its own share of the data (:func:`make_sampler`: a
  ``DistributedSampler`` shuffled by the run's seed and the epoch; rank ``r`` takes
  every ``world_size``-th index of the shuffled order, so the ranks' batches of one
  step together are exactly the batch a single process with ``world_size x`` the batch
  size draws in that step under ``torchrun --nproc_per_node 1``);
- ``batch_size`` in the configs is per process (the effective batch is
  ``world_size x batch_size``; scale the learning rate yourself if you want);
- gradients are averaged by DDP; only rank 0 writes the checkpoint, the config and the
  loss log (its own, local losses);
- a wall-clock ``time_budget`` (the ``cpu`` and ``gpu`` configs) is ignored with
  several processes, with a warning: the ranks' clocks differ, so they would stop at
  different iterations and hang; the config's ``iters`` are trained instead;
- BatchNorm layers keep per-process statistics (no ``SyncBatchNorm``).

Example::

    torchrun --nproc_per_node 2 -m baselines.fcn train --config tiny --data synth \\
        --device cpu --iters 200 --out runs/fcn-ddp
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "DistContext",
    "cleanup",
    "endless_epochs",
    "make_sampler",
    "setup_distributed",
    "wrap_model",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 without it).

    Attributes
    ----------
    rank, world_size, local_rank : int
    enabled : bool
        True under ``torchrun`` (even with one process: then the data order is the
        distributed sampler's, which a multi-process run is compared against).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0


def _context_from_env() -> DistContext:
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return DistContext()
    return DistContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        enabled=True,
    )


def setup_distributed(device: str = "auto") -> tuple[DistContext, str]:
    """Join the ``torchrun`` process group (if any) and pick this process's device.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        As for the training functions; under ``torchrun`` ``"auto"``/``"cuda"`` become
        ``cuda:LOCAL_RANK`` when CUDA is available.

    Returns
    -------
    (DistContext, str)
        The context and the device name to use.
    """
    ctx = _context_from_env()
    if not ctx.enabled:
        return ctx, device
    import torch.distributed as dist

    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(ctx.local_rank)
        device = f"cuda:{ctx.local_rank}"
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ctx, device


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` under ``torchrun``, else ``model`` itself.

    Rank 0's weights are broadcast to every rank here, so load a checkpoint (resume)
    into ``model`` before wrapping. Keep the unwrapped module for ``state_dict()``.
    """
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    param = next(model.parameters(), None)
    on_cuda = param is not None and param.device.type == "cuda"
    # some layers get no gradient (the FCN reads only the finest FPN level, so the
    # coarser levels' output convs are unused); DDP must be told, or its reducer
    # waits for them and fails
    return DistributedDataParallel(
        model, device_ids=[ctx.local_rank] if on_cuda else None, find_unused_parameters=True
    )


def make_sampler(dataset: Any, ctx: DistContext, seed: int) -> Any:
    """This rank's ``DistributedSampler`` (shuffled by ``seed`` and the epoch; the
    tail that does not divide evenly is dropped), or None without ``torchrun``."""
    if not ctx.enabled:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(
        dataset,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )


def endless_epochs(loader: Iterable[Any], sampler: Any = None) -> Iterator[Any]:
    """Iterate over ``loader`` forever, telling ``sampler`` each new epoch (so every
    epoch has a new order, the same on every rank)."""
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the data loader is empty; check the dataset split and batch size")
        epoch += 1


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (a no-op without ``torchrun``)."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
