"""Numba kernels of the baselines' ops (every ``@njit`` function of ``baselines.common``).

Stage: compute kernels used by :mod:`baselines.common.ops`. Kernels trust their input:
the wrappers in :mod:`.ops` validate and pass C-contiguous float64/int64 arrays. Each
kernel has a slow NumPy twin of the same name in :mod:`baselines.common._reference`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def nms(boxes, order, iou_threshold):
    """Greedy non-maximum suppression over boxes visited in ``order``.

    Parameters
    ----------
    boxes : (N, 4) float64
        [x1, y1, x2, y2].
    order : (N,) int64
        Visiting order (decreasing score, ties by lower index).
    iou_threshold : float
        A box whose IoU with a kept box is strictly greater than this is suppressed.

    Returns
    -------
    keep : (K,) int64
        Kept indices into ``boxes``, in visiting order.
    """
    n = order.shape[0]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    n_keep = 0
    for a in range(n):
        i = order[a]
        if suppressed[a]:
            continue
        keep[n_keep] = i
        n_keep += 1
        x1 = boxes[i, 0]
        y1 = boxes[i, 1]
        x2 = boxes[i, 2]
        y2 = boxes[i, 3]
        for b in range(a + 1, n):
            if suppressed[b]:
                continue
            j = order[b]
            w = min(x2, boxes[j, 2]) - max(x1, boxes[j, 0])
            h = min(y2, boxes[j, 3]) - max(y1, boxes[j, 1])
            if w <= 0.0 or h <= 0.0:
                continue
            inter = w * h
            union = areas[i] + areas[j] - inter
            # union <= 0 only for degenerate boxes: IoU counts as 0 (torchvision gets NaN,
            # which never exceeds the threshold either)
            if union > 0.0 and inter / union > iou_threshold:
                suppressed[b] = True
    return keep[:n_keep]
