"""Training of the DensePose-RCNN baseline.

In: an :class:`~baselines.rcnn.config.RCNNConfig`, a DensePose-Synth (or DensePose-COCO
with ``annotations``/``image_dir``) split read by :class:`baselines.common.data.SynthDataset`.
Out: in ``out_dir``: ``model.pt`` (weights, config, iteration, optimiser state; written
atomically by :func:`baselines.common.train.save_checkpoint`), ``config.json`` and
``loss_log.jsonl`` (one line per logged iteration: ``iter``, ``lr``, ``loss`` (the total),
every loss term and ``time``); returns a :class:`TrainResult`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from baselines.common.data import SynthDataset, collate
from baselines.common.distributed import (
    cleanup,
    endless_epochs,
    make_sampler,
    setup_distributed,
    wrap_model,
)
from baselines.common.flip import flip_item, uv_mirror_lut
from baselines.common.train import (
    LossLog,
    Schedule,
    choose_device,
    endless,
    load_checkpoint,
    resolve_cpu_amp,
    save_checkpoint,
    seed_everything,
    setup_torch,
    train_loop,
)

from .config import RCNNConfig
from .model import DensePoseRCNN

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
LOG_FILE = "loss_log.jsonl"


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    iters : int
        Iterations run in this call.
    losses : list of float
        Total loss per iteration.
    seconds : float
        Wall time of the loop (data loading included, model building excluded).
    out_dir : Path
    history : list of dict
        Per iteration, every loss term (from :func:`baselines.common.train.train_loop`).
    """

    iters: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    out_dir: Path | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def s_per_iter(self) -> float:
        """Seconds per iteration."""
        return self.seconds / max(1, self.iters)

    def mean(self, first: bool, n: int = 5) -> float:
        """Mean total loss of the first (or last) ``n`` iterations."""
        xs = self.losses[:n] if first else self.losses[-n:]
        return float(np.mean(xs)) if xs else math.nan


def schedule(cfg: RCNNConfig) -> Schedule:
    """Linear warm-up from ``lr / 100``, then x0.1 at each ``lr_steps`` fraction (or a
    cosine decay when ``cfg.lr_schedule == "cosine"``)."""
    return Schedule(
        max_iters=cfg.iters,
        warmup_iters=cfg.warmup_iters,
        warmup_factor=0.01,
        kind=cfg.lr_schedule,
        steps=tuple(int(f * cfg.iters) for f in cfg.lr_steps),
    )


class Flipped(torch.utils.data.Dataset):
    """A :class:`SynthDataset` whose items are mirrored (labels too) with probability 0.5."""

    def __init__(self, ds: SynthDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        item = self.ds[i]
        return flip_item(item) if bool(torch.rand(()) < 0.5) else item


def make_optimizer(model: torch.nn.Module, cfg: RCNNConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; no weight decay on norms and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")


def _loss_fn(device: torch.device, channels_last: bool = False):
    def fn(model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        images, metas = batch
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return model(images, metas)

    return fn


def train(
    cfg: RCNNConfig,
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str = "train",
    annotations: str | Path | None = None,
    image_dir: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    max_images: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``cfg.iters`` iterations and write the checkpoint directory.

    Parameters
    ----------
    cfg : RCNNConfig
        ``threads`` pins CPU threads (0: leave torch's default).
    data : path
        Dataset root.
    out_dir : path
        Checkpoint directory (created).
    split : str
    annotations, image_dir : path, optional
        For DensePose-COCO style data (see :class:`~baselines.common.data.SynthDataset`).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    seed : int
    max_images : int, optional
        Train on the first images of the split only (smoke tests).
    resume : bool
        Continue from ``out_dir/model.pt`` when it exists (iteration, optimiser and the
        seconds already spent, for a ``time_budget``).
    progress : bool, optional
        Progress bar with ETA (default: only on a terminal).

    Returns
    -------
    TrainResult
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dist_ctx, device = setup_distributed(device)  # torchrun: DDP (a no-op otherwise)
    if dist_ctx.world_size > 1 and cfg.time_budget:
        # the ranks' clocks differ, so they would stop at different iterations and hang
        log.warning("torchrun: ignoring the %.0f s time budget; training %d iterations",
                    cfg.time_budget, cfg.iters)  # fmt: skip
        cfg = replace(cfg, time_budget=None)
    dev = choose_device(device)
    if (dev.type == "cpu" and cfg.threads > 0) or dev.type == "cuda":
        setup_torch(dev, max(cfg.threads, 1))
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    dataset = SynthDataset(
        data, split, annotations=annotations, image_dir=image_dir,
        load_iuv=cfg.dense_targets, max_images=max_images,
    )  # fmt: skip
    if len(dataset) == 0:
        raise ValueError(f"{data}: split {split!r} has no images")
    if cfg.dense_targets and not dataset.load_iuv:
        raise ValueError(
            f"{dataset.iuv_dir}: no IUV maps; dense_targets needs DensePose-Synth's "
            "image-level IUV maps (use a config with dense_targets=False for sparse points)"
        )
    if cfg.flip:
        uv_mirror_lut()  # tabulate (or read) the mirror map before the clock starts
    sampler = make_sampler(dataset, dist_ctx, seed)  # this rank's share (None: all)
    loader = torch.utils.data.DataLoader(
        Flipped(dataset) if cfg.flip else dataset,
        batch_size=min(cfg.batch_size, len(dataset)),
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        collate_fn=collate,
        num_workers=cfg.workers,
        generator=gen,
        persistent_workers=cfg.workers > 0,
        pin_memory=dev.type == "cuda",
    )
    model = DensePoseRCNN(cfg).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    start, clock = 0, {"elapsed": 0.0}
    ckpt = out / MODEL_FILE
    if resume and ckpt.exists():
        state = load_checkpoint(ckpt, map_location=dev)
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])
        start = int(state["iter"])
        clock["elapsed"] = float(state.get("elapsed", 0.0))
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    def checkpoint(it: int) -> None:
        if not dist_ctx.is_main:
            return  # rank 0 writes the checkpoint
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "config": cfg.to_dict(), "iter": it, "elapsed": clock["elapsed"]}  # fmt: skip
        save_checkpoint(ckpt, state)

    t0 = time.perf_counter()
    history = train_loop(
        wrap_model(model, dist_ctx),
        endless(loader) if sampler is None else endless_epochs(loader, sampler),
        _loss_fn(dev, cfg.channels_last),
        opt,
        schedule(cfg),
        device=dev,
        clip_grad=cfg.grad_clip or None,
        amp=cfg.amp if dev.type == "cuda" else resolve_cpu_amp(cfg.cpu_amp),
        loss_log=LossLog(out / LOG_FILE if dist_ctx.is_main else None, append=start > 0),
        log_every=cfg.log_every,
        checkpoint=checkpoint,
        checkpoint_every=cfg.ckpt_every,
        start_iter=start,
        time_budget=cfg.time_budget,
        budget_schedule=cfg.budget_schedule,
        clock=clock,
        progress_bar=progress,
    )
    seconds = time.perf_counter() - t0
    cleanup(dist_ctx)
    return TrainResult(
        iters=len(history),
        losses=[h["loss"] for h in history],
        seconds=seconds,
        out_dir=out,
        history=history,
    )


def load_model(ckpt_dir: str | Path, device: str = "cpu") -> DensePoseRCNN:
    """The trained model of a checkpoint directory (or ``model.pt`` path), in eval mode.

    Raises
    ------
    FileNotFoundError
        No checkpoint there.
    """
    p = Path(ckpt_dir)
    path = p / MODEL_FILE if p.is_dir() else p
    dev = choose_device(device)
    state = load_checkpoint(path, map_location=dev)
    model = DensePoseRCNN(RCNNConfig.from_dict(state["config"])).to(dev)
    model.load_state_dict(state["model"])
    return model.eval()
