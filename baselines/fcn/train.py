"""Training of the FCN baseline on image-level IUV ground truth (DensePose-Synth).

In: a dataset root with ``images/<split>`` and ``iuv/<split>`` (``dpeval synth``), a
config. Out, in the checkpoint directory: ``model.pt`` (weights + config + iteration),
``config.json`` and ``loss_log.jsonl`` (one line per iteration).

Targets come from the IUV map: I = R channel (0 background, 1..24), U = G / 255, V = B
/ 255. Padding added to reach a multiple of 32 (or to fill a crop) is ignored (I = -1).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..common.data import SynthDataset, pad_batch
from ..common.distributed import (
    cleanup,
    endless_epochs,
    make_sampler,
    setup_distributed,
    wrap_model,
)
from ..common.flip import flip_iuv, uv_mirror_lut
from ..common.losses import IGNORE, dense_iuv_losses
from ..common.train import (
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
from .config import FCNConfig
from .model import DenseRegFCN

__all__ = ["IUVTargets", "TrainResult", "collate_iuv", "fcn_losses", "train"]

log = logging.getLogger(__name__)

CHECKPOINT = "model.pt"
CONFIG_JSON = "config.json"
LOSS_LOG = "loss_log.jsonl"


class IUVTargets(Dataset):
    """(image, I, U, V) per image of a :class:`SynthDataset`, optionally randomly cropped.

    Parameters
    ----------
    ds : SynthDataset
        Must have IUV maps (``ds.load_iuv``).
    crop : (H, W), optional
        Random crop (images smaller than the crop are padded later, ignored in the loss).

    Crop positions come from torch's generator (seeded per DataLoader worker by torch).
    """

    def __init__(self, ds: SynthDataset, crop: tuple[int, int] | None = None, flip: bool = False):
        if not ds.load_iuv:
            raise ValueError(
                f"{ds.iuv_dir}: no IUV maps; the FCN trains on image-level IUV ground truth "
                "(DensePose-Synth from `dpeval synth`), which real DensePose-COCO lacks"
            )
        self.ds, self.crop, self.flip = ds, crop, flip

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        image, iuv = self.ds.image_and_iuv(i)
        if self.flip and bool(torch.rand(()) < 0.5):
            image, iuv = image.flip(-1), flip_iuv(iuv)
        labels = iuv[0].long()
        u = iuv[1].float() / 255.0
        v = iuv[2].float() / 255.0
        if self.crop is not None:
            ch, cw = self.crop
            h, w = labels.shape
            y0 = int(torch.randint(0, max(h - ch, 0) + 1, ()))
            x0 = int(torch.randint(0, max(w - cw, 0) + 1, ()))
            sl = (slice(y0, y0 + ch), slice(x0, x0 + cw))
            image, labels, u, v = image[(slice(None), *sl)], labels[sl], u[sl], v[sl]
        return image, labels, u, v


def collate_iuv(batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pad to a multiple of 32: images with 0, I with -1 (ignored), U and V with 0."""
    images, labels, u, v = zip(*batch, strict=True)
    return (
        pad_batch(images),
        pad_batch([t[None] for t in labels], value=IGNORE)[:, 0],
        pad_batch([t[None] for t in u])[:, 0],
        pad_batch([t[None] for t in v])[:, 0],
    )


def fcn_losses(model: DenseRegFCN, batch, cfg: FCNConfig, device: torch.device) -> dict:
    """The DensePose losses of one batch (U and V weighted by ``cfg.uv_weight``)."""
    images, labels, u_gt, v_gt = (t.to(device, non_blocking=True) for t in batch)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    out = model(images)
    losses = dense_iuv_losses(
        out["part_logits"].float(),
        out["u"].float(),
        out["v"].float(),
        labels,
        u_gt,
        v_gt,
        bg_weight=cfg.bg_weight,
        beta=cfg.uv_beta,
    )
    losses["loss_U"] = losses["loss_U"] * cfg.uv_weight
    losses["loss_V"] = losses["loss_V"] * cfg.uv_weight
    return losses


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    checkpoint : Path
        ``out_dir/model.pt``.
    history : list of dict
        Per iteration: ``iter``, ``lr``, ``loss``, ``loss_I``, ``loss_U``, ``loss_V``.
    seconds : float
        Wall time of the training loop.
    """

    checkpoint: Path
    history: list[dict[str, float]]
    seconds: float

    def mean_loss(self, first: int | None = None, last: int | None = None) -> float:
        """Mean total loss of the first ``first`` or the last ``last`` iterations."""
        rows = self.history[:first] if first is not None else self.history[-(last or 1) :]
        return float(np.mean([r["loss"] for r in rows]))


def train(
    cfg: FCNConfig,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    split: str = "train",
    annotations: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    max_images: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train the FCN from scratch; write the checkpoint, config and loss log to ``out_dir``.

    Parameters
    ----------
    cfg : FCNConfig
        ``cfg.iters`` iterations, ``cfg.threads`` CPU threads.
    data_root : path
        DensePose-Synth root (``images/<split>``, ``iuv/<split>``, ``annotations``).
    out_dir : path
        Checkpoint directory (created).
    split, annotations, max_images
        Passed to :class:`SynthDataset`.
    device : {"auto", "cpu", "cuda"}
    seed : int
    resume : bool
        Continue from ``out_dir/model.pt`` (weights, optimiser, iteration, seconds spent)
        when it exists; the loss log is appended to.
    progress : bool, optional
        Progress bar with ETA (default: only on a terminal).

    Returns
    -------
    TrainResult
    """
    dist_ctx, device = setup_distributed(device)  # torchrun: DDP (a no-op otherwise)
    if dist_ctx.world_size > 1 and cfg.time_budget:
        # the ranks' clocks differ, so they would stop at different iterations and hang
        log.warning("torchrun: ignoring the %.0f s time budget; training %d iterations",
                    cfg.time_budget, cfg.iters)  # fmt: skip
        cfg = replace(cfg, time_budget=None)
    dev = choose_device(device)
    setup_torch(dev, cfg.threads)
    seed_everything(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = SynthDataset(data_root, split, annotations=annotations, max_images=max_images)
    targets = IUVTargets(ds, cfg.crop, cfg.flip)
    if cfg.flip:
        uv_mirror_lut()  # tabulate (or read) the mirror map before the clock starts
    gen = torch.Generator().manual_seed(seed)
    sampler = make_sampler(targets, dist_ctx, seed)  # this rank's share (None: all)
    loader = DataLoader(
        targets,
        batch_size=min(cfg.batch_size, len(targets)),
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.workers,
        collate_fn=collate_iuv,
        generator=gen,
        pin_memory=dev.type == "cuda",
        persistent_workers=cfg.workers > 0,
    )
    model = DenseRegFCN(cfg).to(dev)
    if dev.type == "cuda" or cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, clock = 0, {"elapsed": 0.0}
    if resume and (out_dir / CHECKPOINT).exists():
        state = load_checkpoint(out_dir / CHECKPOINT, map_location=dev)
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        start, clock["elapsed"] = int(state["iter"]), float(state.get("elapsed", 0.0))
    schedule = Schedule(
        max_iters=cfg.iters,
        warmup_iters=min(cfg.warmup_iters, cfg.iters),
        kind=cfg.schedule,
        steps=cfg.steps,
    )
    (out_dir / CONFIG_JSON).write_text(json.dumps(cfg.to_dict(), indent=2))
    meta: dict[str, Any] = {
        "baseline": "fcn",
        "data_root": str(data_root),
        "split": split,
        "seed": seed,
    }

    def checkpoint(it: int) -> None:
        if not dist_ctx.is_main:
            return  # rank 0 writes the checkpoint
        save_checkpoint(
            out_dir / CHECKPOINT,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": cfg.to_dict(),
                "iter": it,
                "elapsed": clock["elapsed"],
                **meta,
            },
        )

    t0 = time.perf_counter()
    history = train_loop(
        wrap_model(model, dist_ctx),
        endless(loader) if sampler is None else endless_epochs(loader, sampler),
        lambda m, b: fcn_losses(m, b, cfg, dev),
        optimizer,
        schedule,
        device=dev,
        clip_grad=cfg.clip_grad,
        amp=cfg.amp if dev.type == "cuda" else resolve_cpu_amp(cfg.cpu_amp),
        loss_log=LossLog(out_dir / LOSS_LOG if dist_ctx.is_main else None, append=start > 0),
        checkpoint=checkpoint,
        checkpoint_every=200 if cfg.time_budget else 5_000,
        start_iter=start,
        time_budget=cfg.time_budget,
        budget_schedule=cfg.budget_schedule,
        clock=clock,
        progress_bar=progress,
    )
    seconds = time.perf_counter() - t0
    cleanup(dist_ctx)
    return TrainResult(out_dir / CHECKPOINT, history, seconds)
