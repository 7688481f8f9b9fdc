"""Shared training utilities of the baselines: seeding, devices, checkpoints, logs, LR, loop.

In: a model, an optimiser, an endless iterator of batches and a loss function. Out:
checkpoints (``model.pt``, written atomically), a JSONL loss log and the loss history.

Checkpoints go where the user says; the default is ``~/.cache/dpeval/baselines/
<model>-<config>`` (never inside the repository). On CPU the loop pins torch to
``threads`` threads (default 1: on a shared machine more threads are slower, see the
baselines notes); on CUDA it uses automatic mixed precision (bfloat16 when supported).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "LossLog",
    "Schedule",
    "choose_device",
    "default_checkpoint_dir",
    "endless",
    "load_checkpoint",
    "lr_factor",
    "save_checkpoint",
    "seed_everything",
    "setup_torch",
    "train_loop",
]

log = logging.getLogger(__name__)

CACHE_ROOT = Path("~/.cache/dpeval/baselines")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds third-party code using the legacy API)
    torch.manual_seed(seed)


def choose_device(device: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"[:k]``.

    Raises
    ------
    ValueError
        ``"cuda"`` requested but not available, or an unknown name.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available; use --device cpu or auto"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")


def setup_torch(device: torch.device, threads: int = 1) -> None:
    """Pin CPU threads (``torch.set_num_threads``) on CPU; enable TF32/cuDNN autotune on CUDA."""
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(threads)))
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def default_checkpoint_dir(model: str, config: str) -> Path:
    """``~/.cache/dpeval/baselines/<model>-<config>`` (expanded)."""
    return (CACHE_ROOT / f"{model}-{config}").expanduser()


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then ``os.replace`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        With the path and the fix (train first, or pass the right ``--ckpt``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found; train first (the train command "
            "writes CKPT_DIR/model.pt) or pass the right --ckpt"
        )
    return torch.load(path, map_location=map_location, weights_only=False)


class LossLog:
    """Append-only JSONL log: one ``{"iter": ..., "lr": ..., "loss": ..., ...}`` per line."""

    def __init__(self, path: str | Path | None, append: bool = False):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_text("")

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(dict(record), sort_keys=True) + "\n")


@dataclass(frozen=True)
class Schedule:
    """Learning-rate schedule: linear warmup, then cosine or step decay.

    Attributes
    ----------
    max_iters : int
    warmup_iters : int
        Linear ramp from ``warmup_factor`` to 1.
    warmup_factor : float
    kind : {"cosine", "step", "constant"}
    steps : tuple of int
        Iterations where the step schedule multiplies by ``gamma``.
    gamma : float
    min_factor : float
        Floor of the cosine schedule.
    """

    max_iters: int
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    kind: Literal["cosine", "step", "constant"] = "cosine"
    steps: tuple[int, ...] = ()
    gamma: float = 0.1
    min_factor: float = 0.0


def lr_factor(it: int, s: Schedule) -> float:
    """Multiplier of the base LR at 0-based iteration ``it``."""
    if s.kind == "cosine":
        t = min(it, s.max_iters) / max(s.max_iters, 1)
        factor = s.min_factor + (1 - s.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    elif s.kind == "step":
        factor = s.gamma ** sum(it >= step for step in s.steps)
    elif s.kind == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule {s.kind!r}; use cosine, step or constant")
    if it < s.warmup_iters:
        alpha = it / s.warmup_iters
        factor *= s.warmup_factor * (1 - alpha) + alpha
    return factor


def endless(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate over ``loader`` forever (one epoch after another)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the data loader is empty; check the dataset split and batch size")


def _autocast(device: torch.device, amp: bool):
    if not (amp and device.type == "cuda"):
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def train_loop(
    model: nn.Module,
    batches: Iterator[Any],
    loss_fn: Callable[[nn.Module, Any], Mapping[str, Tensor]],
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    *,
    device: torch.device,
    clip_grad: float | None = None,
    amp: bool = True,
    loss_log: LossLog | None = None,
    log_every: int = 1,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    start_iter: int = 0,
) -> list[dict[str, float]]:
    """Run ``schedule.max_iters - start_iter`` optimiser steps.

    Parameters
    ----------
    model : nn.Module
        Already on ``device``; put in train mode here.
    batches : iterator
        Yields whatever ``loss_fn`` takes (e.g. :func:`endless` over a DataLoader).
    loss_fn : callable (model, batch) -> dict of scalar tensors
        Their sum is minimised; each is logged.
    optimizer : torch optimiser
        Its param groups' ``initial_lr`` (set here from ``lr`` if missing) is scaled by
        :func:`lr_factor` every iteration.
    schedule : Schedule
    device : torch.device
    clip_grad : float, optional
        Clip the global gradient norm to this.
    amp : bool
        Mixed precision on CUDA (ignored on CPU).
    loss_log : LossLog, optional
    log_every : int
    checkpoint : callable (iteration) -> None, optional
        Called every ``checkpoint_every`` iterations (0: never) and at the end.
    start_iter : int
        To resume.

    Returns
    -------
    list of dict
        Per iteration: ``iter``, ``lr``, ``loss`` and each named loss (floats).
    """
    model.train()
    ctx, scaler = _autocast(device, amp)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for it in range(start_iter, schedule.max_iters):
        factor = lr_factor(it, schedule)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = next(batches)
        with ctx:
            losses = loss_fn(model, batch)
        total = sum(losses.values())
        if not torch.isfinite(total):
            parts = {k: float(v) for k, v in losses.items()}
            raise FloatingPointError(
                f"iteration {it}: loss is {float(total)} ({parts}); lower the learning rate "
                "or enable gradient clipping"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(total).backward()
            scaler.unscale_(optimizer)
        else:
            total.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        record = {"iter": it, "lr": optimizer.param_groups[0]["lr"], "loss": float(total.detach())}
        record.update({k: float(v.detach()) for k, v in losses.items()})
        record["time"] = time.perf_counter() - t0
        history.append(record)
        if loss_log is not None and (it % max(log_every, 1) == 0 or it == schedule.max_iters - 1):
            loss_log.write(record)
        if it % 20 == 0:
            log.info("iter %d loss %.4f lr %.2e", it, record["loss"], record["lr"])
        if checkpoint is not None and checkpoint_every and (it + 1) % checkpoint_every == 0:
            checkpoint(it + 1)
    if checkpoint is not None:
        checkpoint(schedule.max_iters)
    return history
