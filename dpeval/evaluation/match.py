"""Stage 4 of the data flow: greedy matching of one image, DensePose rules.

In: a similarity matrix (detections x ground truths; GPS, GPSm or mask IoU), box IoUs
for the uv fallback, GT ignore and crowd flags, areas, thresholds.
Out: :class:`ImageMatch` (which detection matched which GT at each threshold, which
are ignored); :func:`match` runs it on every (image, category, area range) of a set of
:class:`~dpeval.evaluation.prepare.Similarities` and returns :class:`Matches`, the input
of :func:`dpeval.evaluation.accumulate.accumulate`.

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

from .._kernel_turn import KernelAfter
from ..errors import StateError
from ..formats.model import GroundTruth
from ..params import BOX_FALLBACK_IOU, EvalParams
from . import _kernels, _reference
from .prepare import ImageSims, Similarities

__all__ = ["ImageMatch", "Matches", "match", "match_image", "similarity_matrix"]


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


_kernel_turn = KernelAfter(512)
"""Image matchings a process runs in plain Python (the kernel's twin,
:func:`dpeval.evaluation._reference.greedy_match`) before the Numba kernel takes over:
the bundled example needs 168 (14 images x 4 modes x 3 area ranges), which take about
20 ms in Python, against 0.7 s to compile the kernel on a first run. Both give the same
matches (``tests/unit/test_match.py`` compares them)."""


def _greedy_match(*args: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not _kernel_turn():
        return _reference.greedy_match(*args)  # type: ignore[arg-type]
    return _kernels.greedy_match(*args)


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
    m, mg, dt_ignore = _greedy_match(
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


@dataclass(frozen=True)
class Matches:
    """Matching results of every (image, category, area range) of one evaluation.

    Attributes
    ----------
    images : dict
        (image id, category id, area index) -> :class:`ImageMatch`.
    image_ids, cat_ids : tuple of int
        Every GT image and category, sorted: detections are concatenated in this image
        order before the stable score sort, as pycocotools does, and the category axis
        of the accumulated arrays follows ``cat_ids``.
    """

    images: dict[tuple[int, int, int], ImageMatch]
    image_ids: tuple[int, ...]
    cat_ids: tuple[int, ...]


def similarity_matrix(s: ImageSims, params: EvalParams) -> np.ndarray:
    """(D, G) float64 similarity of the mode: GPS, sqrt(GPS * IoU) or IoU.

    Raises
    ------
    StateError
        GPSm or IoU asked of similarities computed without masks.
    """
    gps = s.gps_paper if params.kappa == "paper" else s.gps_per_part
    if params.metric == "gps":
        return gps
    if s.mask_iou is None:
        raise StateError("mask IoUs were not computed; build the similarities with masks")
    if params.metric == "iou":
        return s.mask_iou
    return np.sqrt(gps * s.mask_iou)


def match(similarities: Similarities, gt: GroundTruth, params: EvalParams) -> Matches:
    """Match every (image, category) for every area range of ``params``.

    Parameters
    ----------
    similarities : Similarities
        From :func:`dpeval.evaluation.prepare.prepare` on the same ``gt`` (with masks
        for GPSm and IoU).
    gt : GroundTruth
        The ground truth (its flags, crowds and areas decide what is ignored).
    params : EvalParams

    Returns
    -------
    Matches
    """
    gts = gt.annotations
    thr = params.iou_thrs
    ids = tuple(sorted(gt.images)), tuple(sorted(gt.categories))
    if len(similarities.images) * len(params.area_ranges) >= BATCH_AFTER:
        return Matches(_match_batched(similarities, gt, params), *ids)
    out: dict[tuple[int, int, int], ImageMatch] = {}
    for s in similarities.images:
        sim = similarity_matrix(s, params)
        no_dense = np.array([not gts[g].has_dense for g in s.gt_index], dtype=bool)
        crowd = np.array([gts[g].iscrowd for g in s.gt_index], dtype=bool)
        area = np.array([gts[g].area for g in s.gt_index], dtype=np.float64)
        for a, (_, lo, hi) in enumerate(params.area_ranges):
            out[(s.image_id, s.category_id, a)] = match_image(
                sim, s.box_iou, no_dense, crowd, area, s.det_area, s.det_scores, (lo, hi), thr
            )
    return Matches(out, *ids)


BATCH_AFTER = 512
"""Matchings (images x area ranges) of one mode from which :func:`match` runs them all in
one :func:`~dpeval.evaluation._kernels.match_images` call; fewer go image by image
(:func:`match_image`). Both give the same matches (``tests/unit/test_match.py``)."""


_NONE = np.zeros(0)


def _match_batched(
    similarities: Similarities, gt: GroundTruth, params: EvalParams
) -> dict[tuple[int, int, int], ImageMatch]:
    """:func:`match_image` of every (image, area range) through one kernel call."""
    gts = gt.annotations
    images = similarities.images
    sims = [np.asarray(similarity_matrix(s, params), dtype=np.float64) for s in images]
    det_off = np.zeros(len(images) + 1, np.int64)
    gt_off = np.zeros(len(images) + 1, np.int64)
    pair_off = np.zeros(len(images) + 1, np.int64)
    np.cumsum([m.shape[0] for m in sims], out=det_off[1:])
    np.cumsum([m.shape[1] for m in sims], out=gt_off[1:])
    np.cumsum([m.size for m in sims], out=pair_off[1:])
    flat = [g for s in images for g in s.gt_index]
    no_dense = np.array([not gts[g].has_dense for g in flat], dtype=bool)
    crowd = np.array([gts[g].iscrowd for g in flat], dtype=bool)
    area = np.array([gts[g].area for g in flat], dtype=np.float64)
    ranges = params.area_ranges
    matched, match_gt, dt_ignore, gt_ignore = _kernels.match_images(
        np.concatenate([m.ravel() for m in sims] or [_NONE]),
        np.concatenate([np.asarray(s.box_iou, np.float64).ravel() for s in images] or [_NONE]),
        pair_off,
        det_off,
        gt_off,
        no_dense,
        crowd,
        area,
        np.concatenate([np.asarray(s.det_area, np.float64) for s in images] or [_NONE]),
        np.array([lo for _, lo, _ in ranges], np.float64),
        np.array([hi for _, _, hi in ranges], np.float64),
        np.asarray(params.iou_thrs, dtype=np.float64),
        BOX_FALLBACK_IOU,
    )
    out: dict[tuple[int, int, int], ImageMatch] = {}
    for k, s in enumerate(images):
        d0, d1, g0, g1 = det_off[k], det_off[k + 1], gt_off[k], gt_off[k + 1]
        scores = np.asarray(s.det_scores, dtype=np.float64)
        for a in range(len(ranges)):
            out[(s.image_id, s.category_id, a)] = ImageMatch(
                matched[a, :, d0:d1],
                match_gt[a, :, d0:d1],
                dt_ignore[a, :, d0:d1],
                scores,
                gt_ignore[a, g0:g1],
            )
    return out
