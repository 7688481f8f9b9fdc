"""Stage 4 (evaluation): the Numba kernels of :mod:`dpeval.evaluation`.

:func:`greedy_match` runs DensePose's greedy matching of one image; it trusts its input
(the wrapper :func:`dpeval.evaluation.match.match_image` sorts the GTs and passes
C-contiguous float64/bool arrays). Its slow twin of the same name, the pycocotools
loops written out, is in :mod:`dpeval.evaluation._reference`. :func:`match_images`
runs it on every image of a large set for every area range in one call (the per-image
Python around each call cost about 25 us, 0.45 s of a warm minival run); its reference
is :func:`~dpeval.evaluation.match.match_image` image by image (tested).

:func:`resize_above` is the challenge2019 GT mask step of
:mod:`dpeval.evaluation.masks`: the OpenCV-style bilinear resize of a 256x256 label map,
thresholded, in one pass without float temporaries. It does the same float64 operations
in the same order as :func:`~dpeval.evaluation.masks.resize_linear_halfpixel` (no fused
multiply-add: Numba does not contract without ``fastmath``), so its pixels are the same
bit for bit; its twin is in :mod:`dpeval.evaluation._reference`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def greedy_match(sim, ig, crowd, thresholds, box, use_box, fallback_iou):
    """DensePose greedy matching of one image (GTs already sorted, ignored last).

    Parameters
    ----------
    sim : (D, G) float64
        Similarities, detections in score order, GTs in sorted order.
    ig, crowd : (G,) bool
        Ignore and crowd flags (sorted order).
    thresholds : (T,) float64
    box : (D, G) float64
        Box IoUs for the fallback (sorted GT order).
    use_box : bool
        Run the box-IoU fallback at the last threshold.
    fallback_iou : float
        Smallest box IoU of the fallback (0.8).

    Returns
    -------
    matched : (T, D) bool
    match_gt : (T, D) int64
        Sorted GT index, -1 when unmatched.
    dt_ig : (T, D) bool
    """
    n_t = thresholds.shape[0]
    n_d, n_g = sim.shape
    matched = np.zeros((n_t, n_d), np.bool_)
    match_gt = np.full((n_t, n_d), -1, np.int64)
    dt_ig = np.zeros((n_t, n_d), np.bool_)
    gt_matched = np.zeros((n_t, n_g), np.bool_)
    for ti in range(n_t):
        for d in range(n_d):
            best = min(thresholds[ti], 1 - 1e-10)
            m = -1
            for g in range(n_g):
                if gt_matched[ti, g] and not crowd[g]:
                    continue
                if m > -1 and not ig[m] and ig[g]:
                    break
                s = sim[d, g]
                if s < best or s == 0:
                    continue
                best = s
                m = g
            if m == -1:
                continue
            dt_ig[ti, d] = ig[m]
            matched[ti, d] = True
            match_gt[ti, d] = m
            gt_matched[ti, m] = True
    if use_box and n_t > 0:
        last = n_t - 1
        for d in range(n_d):
            if matched[last, d]:
                continue
            best = fallback_iou
            m = -1
            for g in range(n_g):
                if gt_matched[last, g] and not crowd[g]:
                    continue
                if box[d, g] < best:
                    continue
                best = box[d, g]
                m = g
            if m > -1:
                for ti in range(n_t):
                    dt_ig[ti, d] = ig[m]
                if ig[m]:
                    matched[last, d] = True
                    match_gt[last, d] = m
                    gt_matched[last, m] = True
    return matched, match_gt, dt_ig


@njit(cache=True)
def match_images(
    sim, box, pair_off, det_off, gt_off, no_dense, crowd, gt_area, det_area, area_lo, area_hi,
    thresholds, fallback_iou,
):  # fmt: skip
    """:func:`dpeval.evaluation.match.match_image` of every image for every area range,
    in one call (rules 1-5 of :mod:`dpeval.evaluation.match`; the box fallback on).

    Parameters
    ----------
    sim, box : (P,) float64
        Each image's (D, G) similarities and box IoUs, row-major, concatenated.
    pair_off : (N + 1,) int64
        Image ``k``'s matrices are ``sim[pair_off[k]:pair_off[k + 1]]``.
    det_off, gt_off : (N + 1,) int64
        Image ``k``'s detections (score order) and GTs (file order) in the flat arrays.
    no_dense, crowd : (sum G,) bool
    gt_area : (sum G,) float64
    det_area : (sum D,) float64
    area_lo, area_hi : (A,) float64
        Inclusive area ranges.
    thresholds : (T,) float64
    fallback_iou : float

    Returns
    -------
    matched, match_gt, dt_ignore : (A, T, sum D)
        bool, int64 (GT index in the image's file order, -1 when unmatched), bool.
    gt_ignore : (A, sum G) bool
    """
    n_img = det_off.shape[0] - 1
    n_a = area_lo.shape[0]
    n_t = thresholds.shape[0]
    matched = np.zeros((n_a, n_t, det_off[n_img]), np.bool_)
    match_gt = np.full((n_a, n_t, det_off[n_img]), -1, np.int64)
    dt_ignore = np.zeros((n_a, n_t, det_off[n_img]), np.bool_)
    gt_ignore = np.zeros((n_a, gt_off[n_img]), np.bool_)
    for k in range(n_img):
        d0 = det_off[k]
        g0 = gt_off[k]
        n_d = det_off[k + 1] - d0
        n_g = gt_off[k + 1] - g0
        p0 = pair_off[k]
        for a in range(n_a):
            lo = area_lo[a]
            hi = area_hi[a]
            n_ig = 0
            for g in range(n_g):
                ig = no_dense[g0 + g] or gt_area[g0 + g] < lo or gt_area[g0 + g] > hi
                gt_ignore[a, g0 + g] = ig
                n_ig += ig
            if n_g == 0 or n_ig == n_g:  # rule 2: nothing to match, all ignored
                for t in range(n_t):
                    for d in range(n_d):
                        dt_ignore[a, t, d0 + d] = True
                continue
            order = np.empty(n_g, np.int64)  # rule 1: non-ignored first, stable
            q = 0
            for want in (False, True):
                for g in range(n_g):
                    if gt_ignore[a, g0 + g] == want:
                        order[q] = g
                        q += 1
            s = np.empty((n_d, n_g))
            b = np.empty((n_d, n_g))
            ig_s = np.empty(n_g, np.bool_)
            cr_s = np.empty(n_g, np.bool_)
            for j in range(n_g):
                ig_s[j] = gt_ignore[a, g0 + order[j]]
                cr_s[j] = crowd[g0 + order[j]]
                for d in range(n_d):
                    s[d, j] = sim[p0 + d * n_g + order[j]]
                    b[d, j] = box[p0 + d * n_g + order[j]]
            m, mg, dig = greedy_match(s, ig_s, cr_s, thresholds, b, True, fallback_iou)
            for d in range(n_d):
                out_of_range = det_area[d0 + d] < lo or det_area[d0 + d] > hi
                for t in range(n_t):
                    matched[a, t, d0 + d] = m[t, d]
                    if mg[t, d] >= 0:
                        match_gt[a, t, d0 + d] = order[mg[t, d]]
                    dt_ignore[a, t, d0 + d] = dig[t, d] or (out_of_range and not m[t, d])
    return matched, match_gt, dt_ignore, gt_ignore


@njit(cache=True, inline="always")
def _axis(n_out, n_in):
    """Source index pair and weight of each output pixel along one axis."""
    scale = 1.0 / (n_out / n_in)
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    w1 = np.empty(n_out, np.float64)
    for d in range(n_out):
        f = (d + 0.5) * scale - 0.5
        k = np.int64(np.floor(f))
        w = f - k
        if k < 0:
            k, w = 0, 0.0
        if k >= n_in - 1:
            k, w = n_in - 1, 0.0
        i0[d], i1[d], w1[d] = k, min(k + 1, n_in - 1), w
    return i0, i1, w1


@njit(cache=True)
def resize_above(src, out_h, out_w, threshold):
    """``resize_linear_halfpixel(src, out_h, out_w) > threshold`` as a (out_h, out_w) bool.

    Parameters
    ----------
    src : (H, W) float64, C-contiguous
    out_h, out_w : int
        Output size, >= 1.
    threshold : float
    """
    r0, r1, wr = _axis(out_h, src.shape[0])
    c0, c1, wc = _axis(out_w, src.shape[1])
    rows = np.empty((src.shape[0], out_w))
    for i in range(src.shape[0]):
        for j in range(out_w):
            rows[i, j] = src[i, c0[j]] * (1 - wc[j]) + src[i, c1[j]] * wc[j]
    out = np.empty((out_h, out_w), np.bool_)
    for i in range(out_h):
        a, b, w = r0[i], r1[i], wr[i]
        for j in range(out_w):
            out[i, j] = rows[a, j] * (1 - w) + rows[b, j] * w > threshold
    return out
