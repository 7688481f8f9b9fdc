"""The DenseReg-style fully-convolutional network (Güler et al., CVPR 2017 / 2018).

In: normalised images (B, 3, H, W), H and W multiples of 32. Out: dense predictions at
the input resolution: 25 part logits (0 = background) and, for each of the 24 parts, U
and V in [0, 1] (a sigmoid on the regressors).

Two trunks (``FCNConfig.arch``): ``"dilated"``, a ResNet with dilated stages 4 and 5
(output stride 8) as in DenseReg, and ``"fpn"``, a ResNet-FPN read at P2 (stride 4),
which is about 2x cheaper on CPU and used by the ``tiny`` config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..common.backbones import ResNet, ResNetFPN, make_norm
from ..common.losses import N_CLASSES, N_PARTS
from .config import FCNConfig

__all__ = ["DenseRegFCN"]


class DenseRegFCN(nn.Module):
    """Backbone -> head (convs) -> 25 part logits + 24 U + 24 V, upsampled to the input.

    Parameters
    ----------
    cfg : FCNConfig

    Attributes
    ----------
    stride : int
        Output stride of the head before upsampling (4 or 8).

    Examples
    --------
    >>> from baselines.fcn.config import TINY
    >>> out = DenseRegFCN(TINY)(torch.zeros(1, 3, 64, 64))
    >>> [tuple(out[k].shape) for k in ("part_logits", "u", "v")]
    [(1, 25, 64, 64), (1, 24, 64, 64), (1, 24, 64, 64)]
    """

    def __init__(self, cfg: FCNConfig):
        super().__init__()
        self.arch = cfg.arch
        if cfg.arch == "fpn":
            self.backbone: nn.Module = ResNetFPN(cfg.depth, cfg.width, cfg.fpn_channels, cfg.norm)
            cin, self.stride = cfg.fpn_channels, 4
        elif cfg.arch == "dilated":
            self.backbone = ResNet(cfg.depth, cfg.width, cfg.norm, dilation=(False, True, True))
            cin, self.stride = self.backbone.out_channels["c5"], 8
        else:
            raise ValueError(f"unknown FCN arch {cfg.arch!r}; use 'fpn' or 'dilated'")
        layers: list[nn.Module] = []
        for _ in range(cfg.head_convs):
            layers += [
                nn.Conv2d(cin, cfg.head_channels, 3, padding=1, bias=False),
                make_norm(cfg.norm, cfg.head_channels),
                nn.ReLU(inplace=True),
            ]
            cin = cfg.head_channels
        self.head = nn.Sequential(*layers)
        self.predictor = nn.Conv2d(cin, N_CLASSES + 2 * N_PARTS, 1)
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def features(self, x: Tensor) -> Tensor:
        """The map the head reads: P2 (``fpn``) or C5 (``dilated``)."""
        feats = self.backbone(x)
        return feats[0] if self.arch == "fpn" else feats["c5"]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> ``part_logits`` (B, 25, H, W), ``u``, ``v`` (B, 24, H, W) in [0, 1]."""
        out = self.predictor(self.head(self.features(x)))
        out = F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits, u, v = torch.split(out, [N_CLASSES, N_PARTS, N_PARTS], dim=1)
        return {"part_logits": logits, "u": torch.sigmoid(u), "v": torch.sigmoid(v)}
