"""Backbones in plain PyTorch: ResNet-18/34/50 (optionally dilated), FPN, ResNet-FPN.

In: image batches (B, 3, H, W). Out: multi-scale feature maps (dict C2..C5 for the
ResNet, list P2..P5 for the FPN).

The layout is torchvision's ResNet v1.5 (stride on the 3x3 conv of the bottleneck), so
with ``width=64`` and ``norm="bn"`` the parameter counts equal torchvision's ``resnet18``
/ ``resnet34`` / ``resnet50`` without ``fc`` (11.18 M / 21.28 M / 23.51 M). There are no
pretrained weights (the GPU machine is offline), so the defaults suit training from
scratch: GroupNorm, Kaiming init, and the last norm of each residual branch zero-inited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FPN", "FrozenBatchNorm2d", "ResNet", "ResNetFPN", "make_norm"]

NORMS = ("gn", "bn", "frozen_bn", "none")
GN_GROUPS = 32
"""GroupNorm groups for wide layers (Wu & He's default)."""
GN_MIN_GROUP_CHANNELS = 4
"""Narrow layers use fewer groups so each group keeps at least this many channels."""

_BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (all buffers, no params)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None].to(x.dtype) + shift[None, :, None, None].to(x.dtype)


def gn_groups(channels: int) -> int:
    """Number of GroupNorm groups for ``channels``: 32, fewer for narrow layers.

    The largest divisor of ``channels`` that is <= 32 and leaves at least 4 channels per
    group (e.g. 256 -> 32, 64 -> 16, 32 -> 8).
    """
    best = 1
    for g in range(1, GN_GROUPS + 1):
        if channels % g == 0 and channels // g >= GN_MIN_GROUP_CHANNELS:
            best = g
    return best


def make_norm(norm: str, channels: int) -> nn.Module:
    """A 2-d norm layer: ``"gn"`` (GroupNorm), ``"bn"``, ``"frozen_bn"`` or ``"none"``."""
    if norm == "gn":
        return nn.GroupNorm(gn_groups(channels), channels)
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _conv(
    cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(
        cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, bias=bias
    )


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int, dilation: int, first_dilation: int, norm: str
    ):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride, first_dilation)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv(planes, planes, 3, 1, dilation)
        self.bn2 = make_norm(norm, planes)
        self.downsample = _shortcut(cin, planes, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)

    def last_norm(self) -> nn.Module:
        return self.bn2


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, cin: int, planes: int, stride: int, dilation: int, first_dilation: int, norm: str
    ):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv(planes, planes, 3, stride, first_dilation)
        self.bn2 = make_norm(norm, planes)
        self.conv3 = _conv(planes, cout, 1)
        self.bn3 = make_norm(norm, cout)
        self.downsample = _shortcut(cin, cout, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)

    def last_norm(self) -> nn.Module:
        return self.bn3


def _shortcut(cin: int, cout: int, stride: int, norm: str) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv(cin, cout, 1, stride), make_norm(norm, cout))


class ResNet(nn.Module):
    """ResNet-18/34/50 trunk returning the C2..C5 feature maps.

    Parameters
    ----------
    depth : {18, 34, 50}
    width : int, default 64
        Stem width; stage widths are ``width * (1, 2, 4, 8)`` (times 4 at the output of
        the ResNet-50 bottlenecks).
    norm : {"gn", "bn", "frozen_bn", "none"}, default "gn"
    dilation : (bool, bool, bool), default (False, False, False)
        Replace the stride of stages 3, 4, 5 (C3, C4, C5) by dilation: ``(False, True,
        True)`` gives output stride 8, ``(False, False, True)`` 16.
    zero_init_residual : bool, default True
        Zero the scale of the last norm in each residual branch (each block starts as
        the identity; helps training from scratch). Ignored for ``norm="none"``.
    in_channels : int, default 3

    Attributes
    ----------
    out_channels : dict[str, int]
        Channels of ``"c2"``..``"c5"``.
    strides : dict[str, int]
        Output stride of each map (4, 8, 16, 32 without dilation).

    Examples
    --------
    >>> net = ResNet(18, width=16)
    >>> {k: tuple(v.shape) for k, v in net(torch.zeros(1, 3, 64, 64)).items()}["c5"]
    (1, 128, 2, 2)
    """

    def __init__(
        self,
        depth: int = 50,
        width: int = 64,
        norm: str = "gn",
        dilation: Sequence[bool] = (False, False, False),
        zero_init_residual: bool = True,
        in_channels: int = 3,
    ):
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"depth must be one of {sorted(_BLOCKS)}, got {depth}")
        if len(dilation) != 3:
            raise ValueError(f"dilation needs 3 flags (stages 3, 4, 5), got {dilation!r}")
        kind, counts = _BLOCKS[depth]
        block = _BasicBlock if kind == "basic" else _Bottleneck
        self.depth, self.width, self.norm = depth, width, norm
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, cur_dilation, stride_total = width, 1, 4
        self.out_channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        for i, n_blocks in enumerate(counts):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            first_dilation = cur_dilation
            if i > 0 and dilation[i - 1]:
                cur_dilation *= stride
                stride = 1
            stride_total *= stride
            blocks = []
            for j in range(n_blocks):
                blocks.append(
                    block(
                        cin,
                        planes,
                        stride if j == 0 else 1,
                        cur_dilation,
                        first_dilation if j == 0 else cur_dilation,
                        norm,
                    )
                )
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.out_channels[f"c{i + 2}"] = cin
            self.strides[f"c{i + 2}"] = stride_total
        _init_weights(self)
        if zero_init_residual and norm != "none":
            for m in self.modules():
                if isinstance(m, (_BasicBlock, _Bottleneck)):
                    last = m.last_norm()
                    weight = getattr(last, "weight", None)
                    if isinstance(weight, Tensor):
                        with torch.no_grad():
                            weight.zero_()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> {"c2", "c3", "c4", "c5"} feature maps."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = {}
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            out[f"c{i + 2}"] = x
        return out


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, ReLU), unit-scale / zero-shift norms, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FPN(nn.Module):
    """Feature Pyramid Network: lateral 1x1 + top-down nearest upsampling + 3x3 output.

    Parameters
    ----------
    in_channels : sequence of 4 ints
        Channels of C2..C5.
    out_channels : int, default 256
    norm : {"gn", "bn", "frozen_bn", "none"}, default "gn"
        Norm after each conv (convs have a bias only with ``"none"``).

    Attributes
    ----------
    strides : (4, 8, 16, 32)
    out_channels : int
    """

    strides = (4, 8, 16, 32)

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, norm: str = "gn"):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"FPN needs the channels of C2..C5, got {list(in_channels)}")
        self.out_channels = out_channels
        bias = norm == "none"
        self.lateral = nn.ModuleList(
            nn.Sequential(_conv(c, out_channels, 1, bias=bias), make_norm(norm, out_channels))
            for c in in_channels
        )
        self.output = nn.ModuleList(
            nn.Sequential(
                _conv(out_channels, out_channels, 3, bias=bias), make_norm(norm, out_channels)
            )
            for _ in in_channels
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # Detectron2's c2_xavier_fill
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: dict[str, Tensor] | Sequence[Tensor]) -> list[Tensor]:
        """{"c2".."c5"} (or a list C2..C5) -> [P2, P3, P4, P5]."""
        if isinstance(feats, dict):
            feats = [feats[k] for k in ("c2", "c3", "c4", "c5")]
        lat = [m(f) for m, f in zip(self.lateral, feats, strict=True)]
        top = lat[-1]
        merged = [top]
        for x in reversed(lat[:-1]):
            top = x + F.interpolate(top, size=x.shape[-2:], mode="nearest")
            merged.append(top)
        merged.reverse()
        return [m(x) for m, x in zip(self.output, merged, strict=True)]


class ResNetFPN(nn.Module):
    """A :class:`ResNet` followed by an :class:`FPN`: (B, 3, H, W) -> [P2, P3, P4, P5].

    Parameters
    ----------
    depth, width, norm
        As in :class:`ResNet` (``norm`` is used by the FPN too).
    fpn_channels : int, default 256

    Attributes
    ----------
    strides : (4, 8, 16, 32)
    out_channels : int
        ``fpn_channels``.
    """

    def __init__(self, depth: int = 50, width: int = 64, fpn_channels: int = 256, norm: str = "gn"):
        super().__init__()
        self.body = ResNet(depth, width, norm)
        self.fpn = FPN(
            [self.body.out_channels[k] for k in ("c2", "c3", "c4", "c5")], fpn_channels, norm
        )
        self.strides = FPN.strides
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> [P2, P3, P4, P5] at strides 4, 8, 16, 32."""
        return self.fpn(self.body(x))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def output_size(size: int, stride: int) -> int:
    """Spatial size of a stride-``stride`` map for an input side ``size`` (ResNet rounding)."""
    return math.ceil(size / stride)
