"""Evaluation core, prepare stage: pycocotools box IoU.

In: detection and GT boxes ``[x, y, w, h]`` and the GT crowd flags. Out: the (D, G) box
IoUs that the uv box fallback of :mod:`dpeval.evaluation.match` reads.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou"]


def box_iou(dt: np.ndarray, gt: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """pycocotools box IoU of [x, y, w, h] boxes; crowd GTs use intersection / dt area.

    Parameters
    ----------
    dt : (D, 4) float
    gt : (G, 4) float
    gt_crowd : (G,) bool

    Returns
    -------
    (D, G) float64
    """
    dt = np.asarray(dt, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    iw = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2]) - np.maximum(
        dt[:, None, 0], gt[None, :, 0]
    )
    ih = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3]) - np.maximum(
        dt[:, None, 1], gt[None, :, 1]
    )
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    da = (dt[:, 2] * dt[:, 3])[:, None]
    ga = (gt[:, 2] * gt[:, 3])[None, :]
    union = np.where(np.asarray(gt_crowd, dtype=bool)[None, :], da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(inter > 0, inter / union, 0.0)
    return out
