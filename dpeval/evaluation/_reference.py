"""Stage 4 (evaluation): slow twins of :mod:`dpeval.evaluation._kernels` (used by the tests)."""

from __future__ import annotations

import numpy as np


def greedy_match(
    sim: np.ndarray,
    ig: np.ndarray,
    crowd: np.ndarray,
    thresholds: np.ndarray,
    box: np.ndarray,
    use_box: bool,
    fallback_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Twin of :func:`dpeval.evaluation._kernels.greedy_match`: the pycocotools loops, verbatim in
    structure (threshold, detection, GT), plus the uv box fallback."""
    n_t = len(thresholds)
    n_d, n_g = sim.shape
    matched = np.zeros((n_t, n_d), bool)
    match_gt = np.full((n_t, n_d), -1, np.int64)
    dt_ig = np.zeros((n_t, n_d), bool)
    gt_matched = np.zeros((n_t, n_g), bool)
    for ti, t in enumerate(thresholds):
        for d in range(n_d):
            best, m = min(t, 1 - 1e-10), -1
            for g in range(n_g):
                if gt_matched[ti, g] and not crowd[g]:
                    continue
                if m > -1 and not ig[m] and ig[g]:
                    break
                if sim[d, g] < best or sim[d, g] == 0:
                    continue
                best, m = sim[d, g], g
            if m == -1:
                continue
            dt_ig[ti, d], matched[ti, d], match_gt[ti, d] = ig[m], True, m
            gt_matched[ti, m] = True
    if use_box and n_t:
        last = n_t - 1
        for d in range(n_d):
            if matched[last, d]:
                continue
            best, m = fallback_iou, -1
            for g in range(n_g):
                if gt_matched[last, g] and not crowd[g]:
                    continue
                if box[d, g] < best:
                    continue
                best, m = box[d, g], g
            if m > -1:
                dt_ig[:, d] = ig[m]
                if ig[m]:
                    matched[last, d], match_gt[last, d] = True, m
                    gt_matched[last, m] = True
    return matched, match_gt, dt_ig


def resize_above(src: np.ndarray, out_h: int, out_w: int, threshold: float) -> np.ndarray:
    """Twin of the kernel: the NumPy resize of :mod:`dpeval.evaluation.masks`, thresholded."""
    from .masks import resize_linear_halfpixel

    return resize_linear_halfpixel(src, out_h, out_w) > threshold
