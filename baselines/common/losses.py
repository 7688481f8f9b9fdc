"""The DensePose losses (Güler et al., CVPR 2018) on dense per-pixel predictions.

In: network outputs (part logits, per-part U and V) and ground truth (part ids, U, V)
on the same pixel grid. Out: a dict of scalar losses ``loss_I``, ``loss_U``, ``loss_V``.

- ``loss_I``: cross-entropy over the 25 classes (0 = background, 1..24 = parts), the
  background class weighted by ``bg_weight`` (torch's weighted mean: the sum of the
  weighted per-pixel losses divided by the sum of the weights); pixels labelled -1 are
  ignored.
- ``loss_U``, ``loss_V``: smooth-L1 between the ground-truth part's own U (V) channel and
  the ground truth, averaged over foreground pixels (0, still differentiable, when there
  are none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE", "N_CLASSES", "N_PARTS", "dense_iuv_losses"]

N_PARTS = 24
N_CLASSES = N_PARTS + 1
IGNORE = -1
"""Label of pixels that take no part in any loss (padding, unknown)."""


def dense_iuv_losses(
    part_logits: Tensor,
    u: Tensor,
    v: Tensor,
    I_gt: Tensor,
    U_gt: Tensor,
    V_gt: Tensor,
    bg_weight: float = 1.0,
    beta: float = 1.0,
) -> dict[str, Tensor]:
    """Part classification and per-part U/V regression losses.

    Parameters
    ----------
    part_logits : (N, 25, H, W) float
    u, v : (N, 24, H, W) float
        Predicted U and V of every part (channel ``k`` is part ``k + 1``), already in the
        unit the ground truth uses (e.g. after a sigmoid).
    I_gt : (N, H, W) int64
        0 background, 1..24 part, -1 ignored.
    U_gt, V_gt : (N, H, W) float
        Ground-truth U, V in [0, 1] (read on foreground pixels only).
    bg_weight : float, default 1.0
        Cross-entropy weight of the background class (parts weigh 1).
    beta : float, default 1.0
        Smooth-L1 transition point (quadratic below, linear above).

    Returns
    -------
    dict
        ``loss_I``, ``loss_U``, ``loss_V``: scalar tensors.

    Examples
    --------
    >>> logits = torch.zeros(1, 25, 1, 2)
    >>> I = torch.tensor([[[0, 3]]])
    >>> out = dense_iuv_losses(logits, torch.zeros(1, 24, 1, 2), torch.zeros(1, 24, 1, 2),
    ...                        I, torch.full((1, 1, 2), 0.5), torch.zeros(1, 1, 2))
    >>> round(float(out["loss_I"]), 4), float(out["loss_U"])
    (3.2189, 0.125)
    """
    if part_logits.shape[1] != N_CLASSES or u.shape[1] != N_PARTS or v.shape[1] != N_PARTS:
        raise ValueError(
            f"expected part_logits (N, 25, H, W) and u, v (N, 24, H, W); got "
            f"{tuple(part_logits.shape)}, {tuple(u.shape)}, {tuple(v.shape)}"
        )
    if I_gt.shape != part_logits.shape[:1] + part_logits.shape[2:]:
        raise ValueError(
            f"I_gt {tuple(I_gt.shape)} does not match part_logits {tuple(part_logits.shape)}"
        )
    weight = torch.ones(N_CLASSES, dtype=part_logits.dtype, device=part_logits.device)
    weight[0] = bg_weight
    labels = I_gt.long()
    if (labels != IGNORE).any():
        loss_i = F.cross_entropy(part_logits, labels, weight=weight, ignore_index=IGNORE)
    else:
        loss_i = part_logits.sum() * 0.0
    fg = labels > 0
    if not fg.any():
        zero = (u.sum() + v.sum()) * 0.0
        return {"loss_I": loss_i, "loss_U": zero, "loss_V": zero}
    index = (labels.clamp(min=1) - 1).unsqueeze(1)  # (N, 1, H, W)
    u_part = u.gather(1, index).squeeze(1)[fg]
    v_part = v.gather(1, index).squeeze(1)[fg]
    loss_u = F.smooth_l1_loss(u_part, U_gt[fg].to(u_part.dtype), beta=beta)
    loss_v = F.smooth_l1_loss(v_part, V_gt[fg].to(v_part.dtype), beta=beta)
    return {"loss_I": loss_i, "loss_U": loss_u, "loss_V": loss_v}
