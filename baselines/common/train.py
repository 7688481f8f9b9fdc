"""Shared training utilities of the baselines: seeding, devices, checkpoints, logs, LR, loop.

In: a model, an optimiser, an endless iterator of batches and a loss function. Out:
checkpoints (``model.pt``, written atomically), a JSONL loss log and the loss history.

Checkpoints go where the user says; the default is ``~/.cache/dpeval/baselines/
<model>-<config>`` (never inside the repository). On CPU the loop pins torch to
``threads`` threads (default 1: on a shared machine more threads are slower, see the
baselines notes); on CUDA it uses automatic mixed precision (bfloat16 when supported),
and on a CPU with AMX bfloat16 tiles (Intel Sapphire Rapids and later) bfloat16
autocast when the config asks for it (``cpu_amp``: about 1.45x faster training steps of
the ``cpu`` FCN, 2x for a width-64 one; CPUs without AMX stay in float32).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
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
    "cpu_bf16_available",
    "default_checkpoint_dir",
    "endless",
    "load_checkpoint",
    "lr_factor",
    "save_checkpoint",
    "save_weight_shards",
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


SHARD_BYTES = 15 * 2**20
"""Largest weight shard written by :func:`save_weight_shards` (under 16 MiB per file)."""


def save_weight_shards(ckpt_dir: str | Path, max_bytes: int = SHARD_BYTES) -> list[Path]:
    """Write ``weights-00.pt``, ``weights-01.pt``, ...: ``model.pt``'s weights in float16
    (config and iteration in the first), each file under ``max_bytes``.

    These are the files to keep: :func:`load_checkpoint` reads them back (as float32)
    when ``model.pt`` (with its optimiser state, for resuming) is gone.
    """
    ckpt_dir = Path(ckpt_dir)
    state = torch.load(ckpt_dir / "model.pt", map_location="cpu", weights_only=False)
    for old in ckpt_dir.glob("weights-*.pt"):
        old.unlink()
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key, t in state["model"].items():
        t = t.half() if t.is_floating_point() else t
        n = t.numel() * t.element_size()
        if shards[-1] and size + n > max_bytes - 2**16:
            shards.append({})
            size = 0
        if n > max_bytes - 2**16:  # one huge tensor: split along its first axis
            rows = max(1, (max_bytes - 2**16) // max(1, n // max(1, t.shape[0])))
            for k, part in enumerate(torch.split(t, rows)):
                shards[-1][f"{key}#part{k}"] = part.clone()
                shards.append({})
            continue
        shards[-1][key] = t
        size += n
    shards = [s for s in shards if s]
    meta = {k: state[k] for k in state if k not in ("model", "optimizer")}
    paths = []
    for k, s in enumerate(shards):
        p = ckpt_dir / f"weights-{k:02d}.pt"
        save_checkpoint(
            p, {"model": s, "shard": k, "shards": len(shards), **(meta if k == 0 else {})}
        )
        paths.append(p)
    return paths


def _load_shards(paths: list[Path], map_location) -> dict:
    first = torch.load(paths[0], map_location=map_location, weights_only=False)
    if first.get("shards") != len(paths):
        raise FileNotFoundError(
            f"{paths[0].parent}: {len(paths)} weight shards but the first says "
            f"{first.get('shards')}; copy all weights-*.pt files"
        )
    merged: dict[str, Tensor] = {}
    parts: dict[str, list[Tensor]] = {}
    for p in paths:
        shard = first if p == paths[0] else torch.load(p, map_location=map_location,
                                                       weights_only=False)  # fmt: skip
        for key, t in shard["model"].items():
            if "#part" in key:
                parts.setdefault(key.split("#part")[0], []).append(t)
            else:
                merged[key] = t
    for key, ts in parts.items():
        merged[key] = torch.cat(ts)
    merged = {k: (v.float() if v.is_floating_point() else v) for k, v in merged.items()}
    return {**{k: v for k, v in first.items() if k not in ("shard", "shards")}, "model": merged}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (or, when ``model.pt`` is
    absent, the float16 shards of :func:`save_weight_shards` next to it, as float32).

    Raises
    ------
    FileNotFoundError
        With the path and the fix (train first, or pass the right ``--ckpt``).
    """
    path = Path(path)
    shards = sorted(path.parent.glob("weights-*.pt"))
    if not path.is_file() and path.name == "model.pt" and shards:
        return _load_shards(shards, map_location)
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


def lr_factor(it: int, s: Schedule, progress: float | None = None) -> float:
    """Multiplier of the base LR at 0-based iteration ``it``.

    ``progress`` (fraction of a wall-clock budget spent, in [0, 1]) replaces
    ``it / max_iters`` for the cosine decay and the step points (steps are then read as
    fractions ``step / max_iters``); the warm-up still counts iterations.
    """
    if progress is not None:
        t = min(max(float(progress), 0.0), 1.0)
    else:
        t = min(it, s.max_iters) / max(s.max_iters, 1)
    if s.kind == "cosine":
        factor = s.min_factor + (1 - s.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    elif s.kind == "step":
        if progress is not None:
            factor = s.gamma ** sum(t >= step / max(s.max_iters, 1) for step in s.steps)
        else:
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


def cpu_bf16_available() -> bool:
    """Whether this CPU has AMX bfloat16 tiles (``amx_bf16`` in ``/proc/cpuinfo``).

    Without them oneDNN emulates bfloat16 convolutions and training gets slower, not
    faster, so ``cpu_amp="auto"`` turns bfloat16 on only where this is true.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_cpu_amp(mode: str) -> bool:
    """``cpu_amp`` config value -> bfloat16 autocast on the CPU or not."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"cpu_amp must be 'auto', 'on' or 'off', not {mode!r}")
    return mode == "on" or (mode == "auto" and cpu_bf16_available())


def _autocast(device: torch.device, amp: bool):
    if device.type == "cpu":
        if amp:
            return torch.autocast("cpu", dtype=torch.bfloat16), None
        return nullcontext(), None
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
    time_budget: float | None = None,
    clock: dict[str, float] | None = None,
    progress_bar: bool | None = None,
    budget_schedule: Literal["wall", "adaptive"] = "wall",
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
        Mixed precision: on CUDA bfloat16 (float16 with a scaler where bfloat16 is not
        supported); on the CPU bfloat16 autocast (pass ``resolve_cpu_amp(cfg.cpu_amp)``).
    loss_log : LossLog, optional
    log_every : int
    checkpoint : callable (iteration) -> None, optional
        Called every ``checkpoint_every`` iterations (0: never) and at the end.
    start_iter : int
        To resume.
    time_budget : float, optional
        Wall-clock seconds of training (all sessions of a resumed run together): the loop
        stops when they are spent (or at ``schedule.max_iters``, whichever comes first),
        and the LR schedule follows the fraction of the budget spent instead of the
        iteration count (so a slower, contended machine gets a complete schedule in
        fewer iterations).
    clock : dict, optional
        ``{"elapsed": seconds}`` trained before this call (resume); updated in place
        every iteration, so a ``checkpoint`` callback can save it.
    progress_bar : bool, optional
        A tqdm bar with ETA on stderr; default: only when stderr is a terminal.
    budget_schedule : {"wall", "adaptive"}
        With a ``time_budget``, what the LR schedule follows: ``"wall"``, the fraction
        of the budget spent; ``"adaptive"``, the fraction of the iterations, the total
        being re-estimated every iteration as ``done + rate x seconds left`` (rate: the
        last minute's iterations per second), never going back. On a machine whose
        load changes, the adaptive schedule spends its high learning rates on
        iterations actually run rather than on seconds spent waiting for a core.

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
    clock = clock if clock is not None else {}
    before = float(clock.get("elapsed", 0.0))
    bar = _progress_bar(progress_bar, schedule, start_iter, time_budget, before)
    t0 = time.perf_counter()
    it_end = start_iter
    logged = True
    recent: list[tuple[float, int]] = []  # (elapsed, iteration) of the last minute
    # a resumed run starts from the fraction of the budget already spent (the adaptive
    # estimate needs a few iterations; starting at 0 put the first ones at the peak rate)
    done_progress = float(clock.get("progress", before / time_budget if time_budget else 0.0))
    for it in range(start_iter, schedule.max_iters):
        elapsed = before + time.perf_counter() - t0
        progress = None
        if time_budget is not None:
            progress = elapsed / time_budget
            if progress >= 1.0:
                break
            if budget_schedule == "adaptive":
                recent.append((elapsed, it))
                while len(recent) > 2 and recent[0][0] < elapsed - 60.0:
                    recent.pop(0)
                if len(recent) >= 3 and elapsed > recent[0][0]:
                    rate = (it - recent[0][1]) / (elapsed - recent[0][0])
                    estimate = it / max(it + rate * (time_budget - elapsed), 1e-9)
                    progress = max(done_progress, estimate)
                else:
                    progress = done_progress
            done_progress = progress
            clock["progress"] = progress
        factor = lr_factor(it, schedule, progress)
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
        clock["elapsed"] = before + time.perf_counter() - t0
        record["time"] = clock["elapsed"]
        history.append(record)
        it_end = it + 1
        if bar is not None:
            bar.update(1 if time_budget is None else clock["elapsed"] - bar.n)
            bar.set_postfix(loss=f"{record['loss']:.3f}", it=it_end, refresh=False)
        logged = it % max(log_every, 1) == 0 or it == schedule.max_iters - 1
        if loss_log is not None and logged:
            loss_log.write(record)
        if it % 20 == 0:
            log.info("iter %d loss %.4f lr %.2e", it, record["loss"], record["lr"])
        if checkpoint is not None and checkpoint_every and (it + 1) % checkpoint_every == 0:
            checkpoint(it + 1)
    if bar is not None:
        bar.close()
    if loss_log is not None and history and not logged:
        loss_log.write(history[-1])  # the last iteration is always logged (budget stops)
    if checkpoint is not None and it_end > start_iter:
        checkpoint(it_end)
    return history


def _progress_bar(
    enabled: bool | None,
    schedule: Schedule,
    start_iter: int,
    time_budget: float | None,
    before: float,
):
    """A tqdm bar over iterations (or over budget seconds), or None."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    if time_budget is not None:
        return tqdm(total=round(time_budget), initial=round(before), unit="s", desc="train",
                    dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s "
                    "[{elapsed}<{remaining}{postfix}]")  # fmt: skip
    return tqdm(total=schedule.max_iters, initial=start_iter, unit="it", desc="train",
                dynamic_ncols=True)  # fmt: skip
