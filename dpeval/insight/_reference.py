"""Insight stage: slow twin of :mod:`dpeval.insight._kernels` (used by the tests)."""

from __future__ import annotations

import numpy as np

__all__ = ["weighted_ap"]


def weighted_ap(
    det_image: np.ndarray,
    tp: np.ndarray,
    fp: np.ndarray,
    gt_per_image: np.ndarray,
    weights: np.ndarray,
    rec_thrs: np.ndarray,
) -> np.ndarray:
    """Twin of :func:`dpeval.insight._kernels.weighted_ap`: pycocotools' ``accumulate``
    (cumulative sums, precision envelope, recall thresholds by ``searchsorted``) with
    each detection counted ``weights[b, det_image]`` times.

    Parameters
    ----------
    det_image : (D,) int
        Image position of each detection (detections in score order).
    tp, fp : (T, D) uint8 or bool
        True / false positive (not ignored) at each threshold.
    gt_per_image : (I,) float
        Non-ignored GT per image.
    weights : (B, I) float
        Image weights of each resample.
    rec_thrs : (R,) float

    Returns
    -------
    (B,) float64
        Mean over thresholds of the R-point interpolated precision; NaN where the
        weighted GT count is 0.
    """
    out = np.empty(len(weights))
    for b, w in enumerate(weights):
        npig = float(np.dot(w, gt_per_image))
        if npig == 0:
            out[b] = np.nan
            continue
        wd = w[det_image]
        tp_sum = np.cumsum(tp * wd, axis=1, dtype=np.float64)
        fp_sum = np.cumsum(fp * wd, axis=1, dtype=np.float64)
        aps = []
        for t_sum, f_sum in zip(tp_sum, fp_sum, strict=True):
            rc = t_sum / npig
            pr = t_sum / (t_sum + f_sum + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            inds = np.searchsorted(rc, rec_thrs, side="left")
            q = np.zeros(len(rec_thrs))
            valid = inds < len(rc)
            q[valid] = pr[inds[valid]]
            aps.append(q.mean())
        out[b] = np.mean(aps) if aps else np.nan
    return out
