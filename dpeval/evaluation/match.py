"""Stage 4 of the data flow: greedy matching of one image, DensePose rules.

In: a similarity matrix (detections x ground truths; GPS, GPSm or mask IoU), box IoUs
for the uv fallback, GT ignore and crowd flags, areas, thresholds.
Out: :class:`ImageMatch` (which detection matched which GT at each threshold, which
are ignored), the input of :mod:`dpeval.evaluation.cocoeval`'s accumulation.

The rules are those of DensePose's ``evaluateImg`` (spec §4), quirks included:

1. a GT is ignored when it has no dense points or its area is out of range; GTs are
   sorted non-ignored first (stable);
2. if every GT is ignored (also when there is none) every detection is ignored: such
   images never produce false positives;
3. greedy matching per threshold in score order: the GT with the largest similarity
   >= min(t, 1 - 1e-10) wins (later GTs win ties), similarity 0 never matches, matched
   non-crowd GTs are skipped, and once a regular GT is matched the search stops at the
   first ignored GT;
4. box fallback, once, with the state at the *last* threshold: a detection unmatched
   there takes, among GTs unmatched there (crowds allowed), the one with the largest
   box IoU >= 0.8; its ignore flag is copied to the detection at **all** thresholds,
   and if that GT is ignored the match is recorded at the last threshold;
5. unmatched detections whose box area w*h is out of range are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ..params import BOX_FALLBACK_IOU

__all__ = ["ImageMatch", "box_iou", "match_image"]


@dataclass(frozen=True)
class ImageMatch:
    """Matching result of one image and one area range.

    Attributes
    ----------
    dt_matched : (T, D) bool
        Detection matched at threshold t (in score order).
    dt_match_gt : (T, D) int64
        Index (into the image's GT list, file order) of the matched GT, -1 if none.
    dt_ignore : (T, D) bool
    dt_scores : (D,) float64
    gt_ignore : (G,) bool
        In the image's GT order (file order, not sorted).
    """

    dt_matched: np.ndarray
    dt_match_gt: np.ndarray
    dt_ignore: np.ndarray
    dt_scores: np.ndarray
    gt_ignore: np.ndarray


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


def match_image(
    sim: np.ndarray,
    box_ious: np.ndarray | None,
    gt_no_dense: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    dt_area: np.ndarray,
    dt_scores: np.ndarray,
    area_rng: tuple[float, float],
    thresholds: np.ndarray,
) -> ImageMatch:
    """Match one image's detections (already top-k, score-sorted) to its GTs.

    Parameters
    ----------
    sim : (D, G) float
        Similarity of each detection to each GT (GT in file order).
    box_ious : (D, G) float or None
        Box IoUs for the uv fallback (None disables it).
    gt_no_dense, gt_crowd : (G,) bool
    gt_area : (G,) float
        GT ``area`` field.
    dt_area : (D,) float
        Detection box area w*h.
    dt_scores : (D,) float
        Scores, descending.
    area_rng : (lo, hi)
        Inclusive area range.
    thresholds : (T,) float

    Returns
    -------
    ImageMatch
    """
    n_t = len(thresholds)
    n_d, n_g = sim.shape
    lo, hi = area_rng
    gt_area = np.asarray(gt_area, dtype=np.float64)
    gt_ignore = np.asarray(gt_no_dense, dtype=bool) | (gt_area < lo) | (gt_area > hi)
    dt_matched = np.zeros((n_t, n_d), dtype=bool)
    dt_match_gt = np.full((n_t, n_d), -1, dtype=np.int64)
    dt_ignore = np.zeros((n_t, n_d), dtype=bool)
    scores = np.asarray(dt_scores, dtype=np.float64)
    if n_g == 0 or gt_ignore.all():
        dt_ignore[:] = True
        return ImageMatch(dt_matched, dt_match_gt, dt_ignore, scores, gt_ignore)

    order = np.argsort(gt_ignore, kind="stable")  # non-ignored first
    s = np.ascontiguousarray(np.asarray(sim, dtype=np.float64)[:, order])
    use_box = box_ious is not None
    b = np.ascontiguousarray(np.asarray(box_ious, dtype=np.float64)[:, order]) if use_box else s
    m, mg, dt_ignore = _kernels.greedy_match(
        s,
        np.ascontiguousarray(gt_ignore[order]),
        np.ascontiguousarray(np.asarray(gt_crowd, dtype=bool)[order]),
        np.asarray(thresholds, dtype=np.float64),
        b,
        use_box,
        BOX_FALLBACK_IOU,
    )
    dt_matched = m
    dt_match_gt = np.where(mg >= 0, order[np.maximum(mg, 0)], -1)
    area = np.asarray(dt_area, dtype=np.float64)
    out_of_range = (area < lo) | (area > hi)
    dt_ignore |= ~dt_matched & out_of_range[None, :]
    return ImageMatch(dt_matched, dt_match_gt, dt_ignore, scores, gt_ignore)
