"""The ground truth as predictions: the sanity run ``dpeval score GT GT`` (evaluation).

In: a :class:`~dpeval.formats.model.GroundTruth`, the template and the protocol. Out:
:class:`~dpeval.formats.model.Predictions` with one detection per evaluated person
(every annotation with dense points): its own box, score 1, and a box-sized IUV map
built so that the evaluator reads back what the annotator wrote.

The map, person by person:

1. foreground = the evaluator's own ground-truth mask of the person for ``protocol``
   (:func:`~dpeval.evaluation.masks.gt_mask`), moved into the box; its pixels get part 1
   with U = V = 0 (no GT point is read there);
2. each GT point is written at the pixel the evaluator samples for it (the same float
   operations: ``trunc(gx + dp_x * gw / 255 - gx)``), with ``I = dp_I`` and the uint8
   ``(U8, V8)`` nearest to ``(dp_U, dp_V) * 255`` whose quantised lookup gives the GT
   point's own template vertex (so its geodesic error is 0).

What stays below 1, and why (the IoU ceiling, see the README's scoring section):

- a GT point whose pixel lies outside the person's mask adds that pixel to the
  detection's foreground, so the detection mask is the GT mask plus those pixels and
  the mask IoU is ``|M| / |M + P|``;
- with ``detectron2``, the GT mask is zoomed to ``round(h) x round(w)`` and may reach
  one row or column past ``int(h) x int(w)``, which a box-sized detection map cannot
  cover;
- two GT points that fall on one pixel: the later one wins, so the earlier one reads
  the other's vertex (a small geodesic error);
- a point at ``dp_x = 255`` (or ``dp_y``) on an integer-sized box maps to column ``w``,
  outside the box for both protocols: the evaluator counts it as a miss.

GPS and GPSm AP are 1 as long as every person's GPS (and GPSm) stays above the highest
threshold, 0.95: true on ``examples/gt.json``, not on small people whose points crowd
onto shared pixels (``tests/data/official_golden``: 416 of 9556 points, GPS AP 0.926).
"""

from __future__ import annotations

import math

import numpy as np

from ..formats.model import Detection, GroundTruth, Predictions
from ..template import BodyTemplate
from .masks import gt_mask

__all__ = ["predictions_from_ground_truth"]

_FILL_PART = 1
"""Part id of mask pixels without a GT point (any valid part: no GT point reads them)."""

_NUDGES = [(du, dv) for r in (0, 1, 2) for du in range(-r, r + 1) for dv in range(-r, r + 1)
           if max(abs(du), abs(dv)) == r]  # fmt: skip
"""(U8, V8) offsets tried around the rounded value, nearest ring first."""


def _quantise(template: BodyTemplate, part: np.ndarray, u: np.ndarray, v: np.ndarray):
    """uint8 (U8, V8) per point whose lookup gives the point's own GT vertex when one of
    the 25 nearest grid values does; the rounded value otherwise."""
    want = template.closest_vertices(part, u, v)
    lut = template.uv8_lut
    u0 = np.rint(np.clip(u, 0, 1) * 255).astype(np.int64)
    v0 = np.rint(np.clip(v, 0, 1) * 255).astype(np.int64)
    best_u, best_v = u0.copy(), v0.copy()
    todo = np.ones(len(part), dtype=bool)
    for du, dv in _NUDGES:
        if not todo.any():
            break
        cu, cv = np.clip(u0 + du, 0, 255), np.clip(v0 + dv, 0, 255)
        hit = todo & (lut[part, cu, cv] == want)
        best_u[hit], best_v[hit] = cu[hit], cv[hit]
        todo &= ~hit
    return best_u.astype(np.uint8), best_v.astype(np.uint8)


def predictions_from_ground_truth(
    gt: GroundTruth, template: BodyTemplate, *, protocol: str = "challenge2019"
) -> Predictions:
    """One perfect-as-possible detection per evaluated person of ``gt``.

    Parameters
    ----------
    gt : GroundTruth
        The ground truth to turn into predictions (scored against itself).
    template : BodyTemplate
        Gives each GT point's vertex and the uint8 lookup the evaluator uses.
    protocol : {"challenge2019", "detectron2"}
        Whose GT mask and point bounds to reproduce.

    Returns
    -------
    Predictions
        ``kind == "instances"``, ``format == "ground-truth"``, in annotation order;
        ``source`` names the ground truth.

    Examples
    --------
    >>> from dpeval.formats import load_ground_truth
    >>> from dpeval.template import load_template
    >>> gt = load_ground_truth("examples/gt.json")  # doctest: +SKIP
    >>> p = predictions_from_ground_truth(gt, load_template("open"))  # doctest: +SKIP
    >>> len(p.detections) == sum(a.has_dense for a in gt.annotations)  # doctest: +SKIP
    True
    """
    dets = []
    for a in gt.annotations:
        if not a.has_dense:
            continue  # ignored people: a detection there would only be ignored too
        info = gt.images[a.image_id]
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        height, width = max(1, math.ceil(gh)), max(1, math.ceil(gw))
        iuv = np.zeros((3, height, width), dtype=np.uint8)
        m = gt_mask(a.bbox, a.dp_masks, a.segmentation, info.height, info.width, protocol)
        if m.area:
            r0, c0 = m.y0 - int(gy), m.x0 - int(gx)  # box-local origin of the mask
            rr, cc = np.nonzero(m.mask)
            rr, cc = rr + r0, cc + c0
            keep = (rr >= 0) & (cc >= 0) & (rr < height) & (cc < width)
            iuv[0, rr[keep], cc[keep]] = _FILL_PART
        if a.n_points:
            x = gx + a.dp_x * gw / 255.0  # the evaluator's own float operations
            y = gy + a.dp_y * gh / 255.0
            col, row = np.trunc(x - gx), np.trunc(y - gy)
            ok = (col >= 0) & (row >= 0) & (col < width) & (row < height)
            part = np.asarray(a.dp_I, dtype=np.int64)[ok]
            u8, v8 = _quantise(template, part, a.dp_U[ok], a.dp_V[ok])
            r, c = row[ok].astype(np.int64), col[ok].astype(np.int64)
            iuv[0, r, c] = part
            iuv[1, r, c] = u8
            iuv[2, r, c] = v8
        iuv.flags.writeable = False
        bbox = np.array(a.bbox, dtype=np.float64)
        bbox.flags.writeable = False
        dets.append(
            Detection(
                image_id=a.image_id,
                category_id=a.category_id,
                bbox=bbox,
                score=1.0,
                iuv_shape=iuv.shape,  # type: ignore[arg-type]
                index=a.index,
                _iuv=iuv,
            )
        )
    return Predictions(
        "instances",
        detections=tuple(dets),
        format="ground-truth",
        source=f"{gt.source} (ground truth as predictions)",
        sha256=gt.sha256,
    )
