"""Evaluation core: pointwise metrics of the DensePose paper (§2.3): RCP curve, AUC10, AUC30.

In: per GT point geodesic errors in metres (``inf`` for a point the prediction misses;
NaN for points excluded because their own GT vertex is invalid) and their part ids.
Out: :class:`PointMetrics`.

- RCP: ``f(t)`` = fraction of points with error <= t, reported on a 1 mm grid from 0 to
  30 cm (301 values).
- AUC_a = (1/a) * integral_0^a f(t) dt, computed **exactly** for the empirical step
  curve, with no integration grid: each point contributes ``max(0, a - d) / a``, so
  AUC_a = mean(max(0, 1 - d/a)). AUC10 uses a = 0.10 m, AUC30 a = 0.30 m.

Which prediction a GT point is scored against: for instance predictions, each GT person
is scored against the detection (same image and category, among the top ``max_dets``)
with the highest per-part GPS, ties to the higher score and then the earlier detection;
a person without any detection has every point missed. For image-level dense maps, the
map is sampled at the point's pixel (truncation toward zero; outside the image = miss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formats.model import GroundTruth, Predictions
from ..params import AUC10_RADIUS, AUC30_RADIUS, RCP_GRID
from ..template import N_PARTS, PART_NAMES, BodyTemplate

__all__ = [
    "RCP_GRID",
    "PointMetrics",
    "auc",
    "dense_point_errors",
    "point_errors",
    "point_metrics",
    "ratio_correct_points",
]


def ratio_correct_points(dist: np.ndarray, thresholds: np.ndarray = RCP_GRID) -> np.ndarray:
    """Fraction of points with error <= each threshold (NaN points excluded).

    Parameters
    ----------
    dist : (N,) float
        Errors in metres; inf = missed.
    thresholds : (T,) float

    Returns
    -------
    (T,) float64 (NaN when there is no point)
    """
    d = np.asarray(dist, dtype=np.float64)
    d = np.sort(d[~np.isnan(d)])
    if len(d) == 0:
        return np.full(len(thresholds), np.nan)
    return np.searchsorted(d, np.asarray(thresholds, dtype=np.float64), side="right") / len(d)


def auc(dist: np.ndarray, a: float) -> float:
    """Exact area under the RCP curve up to ``a`` metres, normalised to [0, 1].

    Example
    -------
    >>> auc(np.array([0.0, 0.05, np.inf]), 0.10)  # (1 + 0.5 + 0) / 3
    0.5
    """
    d = np.asarray(dist, dtype=np.float64)
    d = np.sort(d[~np.isnan(d)])  # sorted: the sum does not depend on the point order
    if len(d) == 0:
        return float("nan")
    return float(np.mean(np.clip(1.0 - d / a, 0.0, 1.0)))


@dataclass(frozen=True)
class PointMetrics:
    """Pointwise results.

    Attributes
    ----------
    n_points : int
    auc10, auc30 : float
    rcp : (301,) float64
        Values at :data:`RCP_GRID`.
    per_part : list of dict
        For parts 1..24: part, name, n_points, auc10, auc30, mean error (cm, finite
        errors only), miss rate.
    """

    n_points: int
    auc10: float
    auc30: float
    rcp: np.ndarray
    per_part: list[dict]


def point_metrics(dist: np.ndarray, part: np.ndarray) -> PointMetrics:
    """RCP/AUC overall and per part from per-point errors and GT part ids."""
    dist = np.asarray(dist, dtype=np.float64)
    part = np.asarray(part, dtype=np.int64)
    keep = ~np.isnan(dist)
    dist, part = dist[keep], part[keep]
    rows = []
    for p in range(1, N_PARTS + 1):
        d = dist[part == p]
        finite = np.sort(d[np.isfinite(d)])
        rows.append(
            {
                "part": p,
                "name": PART_NAMES[p],
                "n_points": len(d),
                "auc10": auc(d, AUC10_RADIUS),
                "auc30": auc(d, AUC30_RADIUS),
                "mean_error_cm": float(finite.mean() * 100) if len(finite) else float("nan"),
                "miss_rate": float(np.mean(~np.isfinite(d))) if len(d) else float("nan"),
            }
        )
    return PointMetrics(
        len(dist),
        auc(dist, AUC10_RADIUS),
        auc(dist, AUC30_RADIUS),
        ratio_correct_points(dist),
        rows,
    )


def dense_point_errors(
    gt: GroundTruth, preds: Predictions, template: BodyTemplate, solver
) -> tuple[np.ndarray, np.ndarray]:
    """Per GT point errors for image-level dense IUV maps.

    Returns
    -------
    dist : (N,) float64
        inf where the map misses the point (background, outside the image, no map for
        the image); NaN where the GT point has no valid vertex.
    part : (N,) int64
    """
    maps = {m.image_id: m for m in preds.dense}
    lut = template.uv8_lut
    gt_parts, gt_u, gt_v, pred_v = [], [], [], []
    for a in gt.annotations:
        if not a.has_dense or a.n_points == 0:
            continue
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        x = np.trunc(gx + a.dp_x * gw / 255.0)
        y = np.trunc(gy + a.dp_y * gh / 255.0)
        pv = np.full(a.n_points, -1, dtype=np.int64)
        m = maps.get(a.image_id)
        if m is not None:
            iuv = m.load_iuv()
            _, h, w = iuv.shape
            inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
            c, r = x[inside].astype(np.int64), y[inside].astype(np.int64)
            i = iuv[0, r, c].astype(np.int64)
            i[i > N_PARTS] = 0
            pv[inside] = lut[i, iuv[1, r, c], iuv[2, r, c]]
        gt_parts.append(np.asarray(a.dp_I, dtype=np.int64))
        gt_u.append(a.dp_U)
        gt_v.append(a.dp_V)
        pred_v.append(pv)
    if not gt_parts:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    part = np.concatenate(gt_parts)
    gv = template.closest_vertices(part, np.concatenate(gt_u), np.concatenate(gt_v))
    pv = np.concatenate(pred_v)
    return point_errors(gv, pv, solver), part


def point_errors(gt_vertex: np.ndarray, pred_vertex: np.ndarray, solver: object) -> np.ndarray:
    """Geodesic error of each (GT vertex, predicted vertex) pair in one solver call:
    inf where the prediction has no vertex (a miss), NaN where the GT vertex is invalid
    (dropped from every mean)."""
    dist = np.full(len(gt_vertex), np.inf)
    ok = (gt_vertex >= 0) & (pred_vertex >= 0)
    if ok.any():
        dist[ok] = solver.pairs(gt_vertex[ok], pred_vertex[ok])  # type: ignore[attr-defined]
    dist[gt_vertex < 0] = np.nan
    return dist
