"""Evaluation core, accumulate stage: precision and recall exactly as pycocotools.

In: :class:`~dpeval.evaluation.match.Matches` and :class:`~dpeval.params.EvalParams`.
Out: :class:`Accumulated`, the ``precision`` (T, R, K, A, 1), ``recall`` (T, K, A, 1)
and ``scores`` (T, R, K, A, 1) arrays of pycocotools' ``accumulate`` for the one
``maxDets`` setting of DensePose; -1 where a setting has no non-ignored GT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import EvalParams
from .match import ImageMatch, Matches

__all__ = ["Accumulated", "accumulate"]


@dataclass(frozen=True)
class Accumulated:
    """pycocotools' accumulated arrays for one maxDets setting.

    Attributes
    ----------
    precision : (T, R, K, A, 1) float64
        Interpolated precision at each recall threshold; -1 where undefined.
    recall : (T, K, A, 1) float64
    scores : (T, R, K, A, 1) float64
        Score of the detection at which each recall threshold is reached.
    """

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def _pr_curve(
    ms: list[ImageMatch], rec_thrs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(precision (T, R), recall (T,), scores (T, R)) of the concatenated images, or None
    when no GT is non-ignored."""
    npig = int(sum(int((~m.gt_ignore).sum()) for m in ms))
    if npig == 0:
        return None
    dt_scores = np.concatenate([m.dt_scores for m in ms])
    order = np.argsort(-dt_scores, kind="mergesort")
    dt_scores = dt_scores[order]
    dtm = np.concatenate([m.dt_matched for m in ms], axis=1)[:, order]
    dtig = np.concatenate([m.dt_ignore for m in ms], axis=1)[:, order]
    tp_sum = np.cumsum(dtm & ~dtig, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(~dtm & ~dtig, axis=1, dtype=np.float64)
    n_t, n_r = len(tp_sum), len(rec_thrs)
    precision, scores, recall = np.zeros((n_t, n_r)), np.zeros((n_t, n_r)), np.zeros(n_t)
    for t in range(n_t):
        tp, fp = tp_sum[t], fp_sum[t]
        nd = len(tp)
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1] if nd else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
        inds = np.searchsorted(rc, rec_thrs, side="left")
        valid = inds < nd
        precision[t, valid] = pr[inds[valid]]
        scores[t, valid] = dt_scores[inds[valid]]
    return precision, recall, scores


def accumulate(matches: Matches, params: EvalParams) -> Accumulated:
    """pycocotools ``accumulate`` for one maxDets setting.

    Parameters
    ----------
    matches : Matches
        From :func:`dpeval.evaluation.match.match`.
    params : EvalParams
        Thresholds, recall thresholds and area ranges (those of the matching).

    Returns
    -------
    Accumulated

    Example
    -------
    >>> acc = accumulate(match(sims, gt, params), params)  # doctest: +SKIP
    >>> acc.precision.shape  # (T, R, K, A, 1)  # doctest: +SKIP
    (10, 101, 1, 3, 1)
    """
    n_t, n_r = len(params.iou_thrs), len(params.rec_thrs)
    n_k, n_a = len(matches.cat_ids), len(params.area_ranges)
    precision = -np.ones((n_t, n_r, n_k, n_a, 1))
    recall = -np.ones((n_t, n_k, n_a, 1))
    scores = -np.ones((n_t, n_r, n_k, n_a, 1))
    for k, cat in enumerate(matches.cat_ids):
        for a in range(n_a):
            ms = [
                matches.images[(i, cat, a)]
                for i in matches.image_ids
                if (i, cat, a) in matches.images
            ]
            curve = _pr_curve(ms, params.rec_thrs) if ms else None
            if curve is not None:
                precision[:, :, k, a, 0], recall[:, k, a, 0], scores[:, :, k, a, 0] = curve
    return Accumulated(precision, recall, scores)
