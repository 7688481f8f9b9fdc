"""Slow NumPy twins of the baselines' ops, used only by the tests.

In: NumPy arrays. Out: NumPy arrays.

- :func:`roi_align`: a line-by-line transcription of the Detectron2/torchvision C++
  RoIAlign forward kernel (``ROIAlign_forward_cpu``), including ``bilinear_interpolate``
  with its exact edge rules and the adaptive sampling ratio.
- :func:`nms`: plain greedy NMS (twin of :func:`baselines.common._kernels.nms`).
"""

from __future__ import annotations

import math

import numpy as np


def bilinear_interpolate(fmap: np.ndarray, height: int, width: int, y: float, x: float) -> float:
    """Bilinear value of ``fmap`` (H, W) at (y, x) with the C++ kernel's edge rules."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    if y <= 0:
        y = 0.0
    if x <= 0:
        x = 0.0
    y_low = int(y)
    x_low = int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx
    w1 = hy * hx
    w2 = hy * lx
    w3 = ly * hx
    w4 = ly * lx
    return (
        w1 * fmap[y_low, x_low]
        + w2 * fmap[y_low, x_high]
        + w3 * fmap[y_high, x_low]
        + w4 * fmap[y_high, x_high]
    )


def roi_align(
    features: np.ndarray,
    rois: np.ndarray,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> np.ndarray:
    """RoIAlign forward exactly as the C++ CPU kernel computes it.

    Parameters
    ----------
    features : (N, C, H, W) float64
    rois : (K, 5) float64
        (batch_index, x1, y1, x2, y2) in input-image pixels.
    output_size : (oh, ow)
    spatial_scale : float
    sampling_ratio : int
        Samples per bin side; <= 0 means adaptive (``ceil(roi_size / pooled)``).
    aligned : bool
        Shift by half a pixel (Detectron2's ``aligned=True``).

    Returns
    -------
    (K, C, oh, ow) float64
    """
    _, channels, height, width = features.shape
    pooled_h, pooled_w = output_size
    out = np.zeros((len(rois), channels, pooled_h, pooled_w), dtype=np.float64)
    offset = 0.5 if aligned else 0.0
    for n, roi in enumerate(rois):
        b = int(roi[0])
        roi_start_w = roi[1] * spatial_scale - offset
        roi_start_h = roi[2] * spatial_scale - offset
        roi_end_w = roi[3] * spatial_scale - offset
        roi_end_h = roi[4] * spatial_scale - offset
        roi_width = roi_end_w - roi_start_w
        roi_height = roi_end_h - roi_start_h
        if not aligned:
            roi_width = max(roi_width, 1.0)
            roi_height = max(roi_height, 1.0)
        bin_size_h = roi_height / pooled_h
        bin_size_w = roi_width / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_height / pooled_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_width / pooled_w)
        count = max(grid_h * grid_w, 1)
        for c in range(channels):
            fmap = features[b, c]
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    total = 0.0
                    for iy in range(grid_h):
                        y = roi_start_h + ph * bin_size_h + (iy + 0.5) * bin_size_h / grid_h
                        for ix in range(grid_w):
                            x = roi_start_w + pw * bin_size_w + (ix + 0.5) * bin_size_w / grid_w
                            total += bilinear_interpolate(fmap, height, width, y, x)
                    out[n, c, ph, pw] = total / count
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Plain greedy NMS: keep the best box, drop boxes with IoU > threshold, repeat.

    Ties in score are broken by lower index. Returns (K,) int64 kept indices.
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        ok = True
        for k in keep:
            w = min(boxes[i, 2], boxes[k, 2]) - max(boxes[i, 0], boxes[k, 0])
            h = min(boxes[i, 3], boxes[k, 3]) - max(boxes[i, 1], boxes[k, 1])
            if w <= 0 or h <= 0:
                continue
            inter = w * h
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            area_k = (boxes[k, 2] - boxes[k, 0]) * (boxes[k, 3] - boxes[k, 1])
            union = area_i + area_k - inter
            if union > 0 and inter / union > iou_threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)
