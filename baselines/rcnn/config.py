"""DensePose-RCNN configurations: ``tiny`` (CPU smoke runs) and ``full`` (one GPU).

In: a config name (``"tiny"`` or ``"full"``) and optional overrides.
Out: a frozen :class:`RCNNConfig`, serialisable with :meth:`RCNNConfig.to_dict` and
rebuilt from a checkpoint's ``config.json`` with :meth:`RCNNConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RCNNConfig:
    """Every hyper-parameter of the DensePose-RCNN baseline.

    Attributes
    ----------
    name : str
        Config name, ``"tiny"`` or ``"full"``.
    depth, width, fpn_channels : int
        ResNet depth, stem width (64 = standard) and FPN channels.
    anchor_sizes : tuple of int
        One anchor size (pixels, sqrt of area) per RPN level; levels are P2..P5 plus
        P6 (max-pooled P5) when there are five sizes.
    anchor_ratios : tuple of float
        Anchor aspect ratios h / w.
    rpn_* : RPN settings
        IoU thresholds, sampled anchors per image, top-k before and after NMS.
    roi_* : box head settings
        IoU threshold, sampled proposals per image, positive fraction, FC width.
    dp_pooler : int
        RoIAlign output size of the DensePose head (its output is ``4 * dp_pooler``).
    head_width, head_convs : int
        Channels and number of 3x3 convs of the DensePose head.
    coarse_classes : int
        15 (background + the 14 ``dp_masks`` parts) or 2 (foreground only).
    loss weights : float
        ``w_part`` (25-way CE at points), ``w_uv`` (smooth-L1 on U and V at points),
        ``w_coarse`` (CE on the resampled ``dp_masks``).
    dense_targets : bool
        Supervise the DensePose head with the synthetic image-level IUV maps (every cell
        of the 56 x 56 output inside the matched person's mask, the "teacher" that the
        paper distils for free) instead of the sparse annotated points.
    flip : bool
        Random horizontal flips with the template's mirror tables.
    channels_last : bool
        NHWC memory format for the network.
    batch_size, iters, lr, ... : training schedule (SGD with momentum or AdamW, linear
        warm-up, then ``lr_schedule``: steps at ``lr_steps`` fractions of ``iters``, or
        a cosine decay).
    time_budget : float or None
        Wall-clock seconds of training: stop when spent, LR schedule over the budget.
    cpu_amp : {"off", "auto", "on"}
        bfloat16 autocast on the CPU; ``"auto"``: only where the CPU has AMX bfloat16
        tiles (:func:`baselines.common.train.cpu_bf16_available`).
    budget_schedule : {"wall", "adaptive"}
        What the schedule follows within the budget (see
        :func:`baselines.common.train.train_loop`).
    """

    name: str = "tiny"
    # backbone
    depth: int = 18
    width: int = 32
    fpn_channels: int = 64
    norm: str = "gn"
    # anchors / RPN
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_per_image: int = 64
    rpn_pos_fraction: float = 0.5
    rpn_pre_nms_train: int = 600
    rpn_post_nms_train: int = 100
    rpn_pre_nms_test: int = 300
    rpn_post_nms_test: int = 50
    rpn_nms: float = 0.7
    rpn_min_size: float = 1.0
    # box head
    roi_iou: float = 0.5
    roi_batch_per_image: int = 32
    roi_pos_fraction: float = 0.25
    box_pooler: int = 7
    fc_dim: int = 256
    box_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    test_score_thresh: float = 0.05
    test_nms: float = 0.5
    max_dets: int = 20
    # DensePose head
    dp_pooler: int = 14
    head_width: int = 64
    head_convs: int = 8
    coarse_classes: int = 15
    dp_iou: float = 0.7
    dp_max_rois_per_image: int = 8
    w_part: float = 1.0
    w_uv: float = 1.0
    w_coarse: float = 1.0
    uv_beta: float = 0.1
    dense_targets: bool = False
    flip: bool = False
    channels_last: bool = False
    # training
    batch_size: int = 2
    iters: int = 60
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 5
    lr_steps: tuple[float, ...] = (0.75, 0.92)
    lr_schedule: str = "step"
    time_budget: float | None = None
    budget_schedule: str = "wall"
    grad_clip: float = 5.0
    optimizer: str = "adamw"
    device: str = "cpu"
    threads: int = 1
    workers: int = 0
    amp: bool = False
    cpu_amp: str = "off"
    log_every: int = 1
    ckpt_every: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RCNNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, lists become tuples."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def replace(self, **kw: Any) -> RCNNConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})


def tiny() -> RCNNConfig:
    """CPU smoke config: R18 at width 32, FPN 64, head 64 ch, pooler 14, 1 thread."""
    return RCNNConfig()


def full() -> RCNNConfig:
    """One-GPU config for a ~20k-image synth train split (about 36 epochs at batch 16).

    R50 + FPN 256 with GroupNorm trained from scratch (hence the long schedule),
    anchors 32..512 on P2..P6, Detectron-sized samplers, DensePose head 8 x 512 ch on
    a 14x14 pooler upsampled to 56x56, AMP.
    """
    return RCNNConfig(
        name="full",
        depth=50,
        width=64,
        fpn_channels=256,
        anchor_sizes=(32, 64, 128, 256, 512),
        rpn_batch_per_image=256,
        rpn_pre_nms_train=2000,
        rpn_post_nms_train=1000,
        rpn_pre_nms_test=1000,
        rpn_post_nms_test=1000,
        roi_batch_per_image=512,
        fc_dim=1024,
        dp_pooler=14,
        head_width=512,
        dp_max_rois_per_image=32,
        batch_size=16,
        iters=45_000,
        lr=0.02,
        warmup_iters=1000,
        optimizer="sgd",
        device="cuda",
        threads=0,
        workers=8,
        amp=True,
        log_every=20,
        ckpt_every=2000,
    )


def cpu() -> RCNNConfig:
    """CPU recipe config (``python -m baselines.reproduce cpu``; 192 x 160 synth images).

    R18 at width 32 + FPN 64 (GroupNorm), anchors 16..128 with ratios h/w 1, 2, 3 (people
    stand), DensePose head 8 x 64 ch supervised densely by the synthetic IUV maps, flips,
    batch 2, AdamW peak 1.5e-3 with a cosine decay over a 58-minute budget on one thread.
    """
    return RCNNConfig(
        name="cpu",
        anchor_ratios=(1.0, 2.0, 3.0),
        rpn_batch_per_image=128,
        roi_batch_per_image=64,
        dp_max_rois_per_image=8,
        dense_targets=True,
        flip=True,
        batch_size=2,
        iters=100_000,
        lr=1.5e-3,
        warmup_iters=20,
        lr_schedule="cosine",
        time_budget=3500.0,
        budget_schedule="adaptive",
        cpu_amp="auto",
        ckpt_every=200,
        log_every=1,
    )


def gpu() -> RCNNConfig:
    """GPU recipe config (``python -m baselines.reproduce gpu``, one H200, 2.5 minutes).

    R34 at width 64 + FPN 128, head 8 x 128 ch, dense IUV supervision, flips, batch 32,
    bf16, channels_last, 6 DataLoader workers.
    """
    return RCNNConfig(
        name="gpu",
        depth=34,
        width=64,
        fpn_channels=128,
        anchor_ratios=(1.0, 2.0, 3.0),
        rpn_batch_per_image=128,
        roi_batch_per_image=64,
        fc_dim=512,
        head_width=128,
        dp_max_rois_per_image=8,
        dense_targets=True,
        flip=True,
        channels_last=True,
        batch_size=32,
        iters=100_000,
        lr=2e-3,
        warmup_iters=100,
        lr_schedule="cosine",
        time_budget=150.0,
        budget_schedule="adaptive",
        device="cuda",
        workers=6,
        amp=True,
        ckpt_every=500,
        log_every=5,
    )


CONFIGS = {"tiny": tiny, "full": full, "cpu": cpu, "gpu": gpu}


def get_config(name: str, **overrides: Any) -> RCNNConfig:
    """Config by name with overrides (``None`` overrides are ignored).

    Raises
    ------
    ValueError
        Unknown name.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown rcnn config {name!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[name]().replace(**overrides)
