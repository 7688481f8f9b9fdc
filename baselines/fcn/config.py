"""Configurations of the DenseReg-style FCN baseline: ``tiny`` (CPU smoke) and ``full`` (GPU).

In: a config name (and optional overrides). Out: a frozen :class:`FCNConfig`, stored as
JSON next to each checkpoint so ``predict`` rebuilds the same network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

__all__ = ["CONFIGS", "FCNConfig", "get_config"]


@dataclass(frozen=True)
class FCNConfig:
    """Everything that defines an FCN run.

    Attributes
    ----------
    name : str
    arch : {"fpn", "dilated"}
        ``"fpn"``: ResNet + FPN, head on P2 (stride 4; about 2x cheaper on CPU).
        ``"dilated"``: DenseReg-style dilated ResNet (stages 4 and 5 dilated, output
        stride 8), head on C5.
    depth, width, norm : backbone (see :class:`baselines.common.backbones.ResNet`)
    fpn_channels : int
        FPN width (``arch="fpn"`` only).
    head_channels, head_convs : int
        The head: ``head_convs`` x (3x3 conv + norm + ReLU) of ``head_channels``, then
        1x1 convs to 25 part logits, 24 U and 24 V (sigmoid), upsampled to the input.
    crop : (H, W) or None
        Random training crop (None: whole images; smaller images are padded).
    batch_size, iters, lr, weight_decay, warmup_iters, schedule, clip_grad
        Optimisation (AdamW; linear warmup then cosine decay or steps).
    steps : tuple of int
        Decay points of the step schedule.
    bg_weight : float
        Cross-entropy weight of the background class.
    uv_weight : float
        Weight of the U and V losses against the part loss.
    uv_beta : float
        Smooth-L1 transition point of the U and V losses (U, V in [0, 1]: with 1.0 the
        loss is quadratic everywhere and its gradient vanishes as errors shrink).
    flip : bool
        Random horizontal flips with the template's mirror tables
        (:mod:`baselines.common.flip`).
    channels_last : bool
        NHWC memory format for the network (also on CPU).
    time_budget : float or None
        Wall-clock seconds of training: stop when spent, LR schedule over the budget
        (``iters`` is then an upper bound).
    budget_schedule : {"wall", "adaptive"}
        What the schedule follows within the budget (see
        :func:`baselines.common.train.train_loop`).
    amp : bool
        Mixed precision on CUDA.
    cpu_amp : {"off", "auto", "on"}
        bfloat16 autocast on the CPU; ``"auto"``: only where the CPU has AMX bfloat16
        tiles (:func:`baselines.common.train.cpu_bf16_available`).
    workers : int
        DataLoader workers.
    threads : int
        torch CPU threads.
    fg_threshold : float
        A pixel is foreground when ``1 - p(background)`` exceeds this.
    min_area : int
        Predicted foreground components smaller than this (pixels) are dropped.
    max_dets : int
        Instances kept per image (highest scores).
    """

    name: str = "tiny"
    arch: Literal["fpn", "dilated"] = "fpn"
    depth: int = 18
    width: int = 32
    norm: str = "gn"
    fpn_channels: int = 64
    head_channels: int = 64
    head_convs: int = 2
    crop: tuple[int, int] | None = None
    batch_size: int = 4
    iters: int = 48
    lr: float = 5e-3
    weight_decay: float = 1e-4
    warmup_iters: int = 5
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    steps: tuple[int, ...] = ()
    clip_grad: float | None = 5.0
    bg_weight: float = 0.5
    uv_weight: float = 1.0
    uv_beta: float = 1.0
    flip: bool = False
    channels_last: bool = False
    time_budget: float | None = None
    budget_schedule: Literal["wall", "adaptive"] = "wall"
    amp: bool = True
    cpu_amp: str = "off"
    workers: int = 0
    threads: int = 1
    fg_threshold: float = 0.5
    min_area: int = 30
    max_dets: int = 20

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FCNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown FCN config key(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        for key in ("crop", "steps"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


TINY = FCNConfig()
"""CPU smoke config: ResNet-18 at width 32 + FPN(64), head 2 x 64 ch at stride 4, whole
160 x 128 images, batch 4, 48 iterations (4 epochs of the 48-image test split), lr 5e-3,
1 thread."""

FULL = FCNConfig(
    name="full",
    arch="dilated",
    depth=50,
    width=64,
    norm="gn",
    head_channels=512,
    head_convs=4,
    crop=(384, 512),
    batch_size=16,
    iters=60_000,
    lr=4e-4,
    weight_decay=1e-4,
    warmup_iters=1_000,
    schedule="step",
    steps=(40_000, 53_000),
    bg_weight=0.5,
    amp=True,
    workers=8,
    threads=1,
    min_area=200,
)
"""GPU config: DenseReg-style dilated ResNet-50 (output stride 8), head 4 x 512 ch, random
512 x 384 crops of the 640 x 480 synth images, batch 16, AMP, 8 workers. 60k iterations
are about 48 epochs of a 20,000-image train split (from scratch, GroupNorm)."""

CPU = FCNConfig(
    name="cpu",
    arch="fpn",
    depth=18,
    width=32,
    norm="bn",
    fpn_channels=64,
    head_channels=64,
    head_convs=2,
    batch_size=8,
    iters=100_000,
    lr=6e-3,
    weight_decay=1e-4,
    warmup_iters=20,
    schedule="cosine",
    clip_grad=5.0,
    bg_weight=0.5,
    uv_weight=2.0,
    uv_beta=0.05,
    flip=True,
    channels_last=True,
    time_budget=3500.0,
    budget_schedule="adaptive",
    cpu_amp="auto",
    threads=1,
    min_area=40,
)
"""CPU recipe config (``python -m baselines.reproduce cpu``): ResNet-18 at width 32 +
FPN(64), BatchNorm, head 2 x 64 at stride 4, whole 192 x 160 images, batch 8, AdamW
peak 6e-3 with a cosine decay over a 58-minute wall-clock budget on one thread,
smooth-L1 (beta 0.05) U/V at twice the weight, flips, channels_last."""

GPU = FCNConfig(
    name="gpu",
    arch="fpn",
    depth=34,
    width=64,
    norm="bn",
    fpn_channels=128,
    head_channels=128,
    head_convs=3,
    batch_size=64,
    iters=100_000,
    lr=4e-3,
    weight_decay=1e-4,
    warmup_iters=100,
    schedule="cosine",
    bg_weight=0.5,
    uv_weight=2.0,
    uv_beta=0.05,
    flip=True,
    channels_last=True,
    time_budget=150.0,
    budget_schedule="adaptive",
    amp=True,
    workers=6,
    threads=1,
    min_area=40,
)
"""GPU recipe config (``python -m baselines.reproduce gpu``, one H200, 2.5-minute budget):
ResNet-34 + FPN(128), BatchNorm, head 3 x 128, batch 64, bf16, channels_last, 6 workers."""

CONFIGS = {"tiny": TINY, "full": FULL, "cpu": CPU, "gpu": GPU}


def get_config(name: str, **overrides: Any) -> FCNConfig:
    """A named config with fields replaced by ``overrides`` (None values are ignored)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown FCN config {name!r}; choose from {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None})
