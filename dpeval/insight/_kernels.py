"""Insight stage: the Numba kernel of the image bootstrap (:mod:`dpeval.insight.bootstrap`).

:func:`weighted_ap` computes COCO AP under many image weightings at once; its slow,
obvious twin of the same name, written with the NumPy steps of pycocotools'
``accumulate``, is in :mod:`dpeval.insight._reference`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["weighted_ap"]


@njit(cache=True)
def weighted_ap(det_image, tp, fp, gt_per_image, weights, rec_thrs):
    """COCO AP (mean over thresholds of 101-point interpolated precision) with image
    weights.

    det_image : (D,) int64; tp, fp : (T, D) uint8; gt_per_image : (I,) float64;
    weights : (B, I) float64; rec_thrs : (R,) float64. Returns (B,) float64, NaN where
    the resample has no non-ignored GT.
    """
    n_b = weights.shape[0]
    n_t, n_d = tp.shape
    n_r = rec_thrs.shape[0]
    out = np.empty(n_b)
    rc = np.empty(n_d)
    pr = np.empty(n_d)
    for b in range(n_b):
        w = weights[b]
        npig = 0.0
        for i in range(gt_per_image.shape[0]):
            npig += w[i] * gt_per_image[i]
        if npig == 0:
            out[b] = np.nan
            continue
        total = 0.0
        for t in range(n_t):
            tps = 0.0
            fps = 0.0
            for k in range(n_d):
                wk = w[det_image[k]]
                tps += wk * tp[t, k]
                fps += wk * fp[t, k]
                rc[k] = tps / npig
                pr[k] = tps / (tps + fps + 2.220446049250313e-16)
            for k in range(n_d - 2, -1, -1):
                if pr[k + 1] > pr[k]:
                    pr[k] = pr[k + 1]
            k = 0
            s = 0.0
            for r in range(n_r):
                while k < n_d and rc[k] < rec_thrs[r]:
                    k += 1
                if k < n_d:
                    s += pr[k]
            total += s / n_r
        out[b] = total / n_t
    return out
