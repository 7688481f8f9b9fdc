"""Insight stage: what kind of error each GT point has.

In: :class:`~dpeval.evaluation.prepare.Similarities` (per GT point: its vertex, the
vertex and part predicted by its best detection, the geodesic error), the template and a
geodesic solver. Out: one category per point, counts overall and per part (pandas), and
the GT part x predicted part confusion matrix.

Categories, first match wins (``d`` = geodesic error, ``d_mirror`` = geodesic distance
from the prediction to the left/right mirror of the GT vertex):

1. ``correct``: ``d < 10 cm``;
2. ``background_miss``: nothing predicted there (background, outside the box, no
   detection);
3. ``lr_swap``: ``d_mirror < 10 cm`` and ``d > d_mirror`` (the "two left legs");
4. ``front_back``: the predicted part is the front/back partner of the GT part
   (:data:`FRONT_BACK_PART`);
5. ``wrong_part``: any other part;
6. ``far_error``: the right part, but ``d >= 10 cm``.

Points whose own GT vertex is invalid (NaN error) are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.prepare import Similarities
from ..template import N_PARTS, PART_NAMES, BodyTemplate

__all__ = [
    "CATEGORIES",
    "CORRECT_THR",
    "FRONT_BACK_PART",
    "classify",
    "classify_points",
    "part_confusion",
    "taxonomy_counts",
]

CORRECT_THR = 0.10
"""Geodesic error (metres) under which a point is correct; also the mirror radius."""

CATEGORIES: tuple[str, ...] = (
    "correct",
    "background_miss",
    "lr_swap",
    "front_back",
    "wrong_part",
    "far_error",
)
"""Category names; a point's code is its index here."""

FRONT_BACK_PART: tuple[int, ...] = (
    0, 2, 1, 0, 0, 0, 0, 9, 10, 7, 8, 13, 14, 11, 12, 17, 18, 15, 16, 21, 22, 19, 20, 0, 0,
)  # fmt: skip
"""Front/back partner of each part id (0: none; hands, feet and the head halves are
left/right pairs, not front/back)."""


def classify(
    dist: np.ndarray,
    gt_part: np.ndarray,
    pred_part: np.ndarray,
    mirror_dist: np.ndarray,
    *,
    correct_thr: float = CORRECT_THR,
) -> np.ndarray:
    """Category code of each point (index into :data:`CATEGORIES`, -1 excluded).

    Parameters
    ----------
    dist : (N,) float
        Geodesic error in metres; inf for a miss, NaN excluded.
    gt_part, pred_part : (N,) int
        Part ids (pred 0 = background).
    mirror_dist : (N,) float
        Geodesic distance from the prediction to the mirror of the GT vertex (inf when
        unknown).

    Returns
    -------
    (N,) int8

    Example
    -------
    >>> classify(np.array([0.02, np.inf]), np.array([2, 2]), np.array([2, 0]),
    ...          np.array([0.3, np.inf])).tolist()
    [0, 1]
    """
    d = np.asarray(dist, dtype=np.float64)
    gp = np.asarray(gt_part, dtype=np.int64)
    pp = np.asarray(pred_part, dtype=np.int64)
    md = np.asarray(mirror_dist, dtype=np.float64)
    partner = np.asarray(FRONT_BACK_PART)[np.clip(gp, 0, N_PARTS)]
    code = np.full(len(d), 5, dtype=np.int8)
    code[pp != gp] = 4
    code[(partner > 0) & (pp == partner)] = 3
    with np.errstate(invalid="ignore"):
        code[(md < correct_thr) & (d > md)] = 2
        code[~np.isfinite(d) | (pp == 0)] = 1
        code[d < correct_thr] = 0
    code[np.isnan(d)] = -1
    return code


def classify_points(sims: Similarities, template: BodyTemplate, solver: Any) -> np.ndarray:
    """Category code of every GT point of ``sims`` (order of ``sims.point_dist``).

    Parameters
    ----------
    sims : Similarities
        Needs ``point_vertex``, ``point_pred_vertex`` and ``point_pred_part``.
    template : BodyTemplate
        Needs ``mirror``.
    solver : GeodesicSolver

    Returns
    -------
    (N,) int8
        Index into :data:`CATEGORIES`; -1 for excluded points.

    Raises
    ------
    ValueError
        The similarities lack predicted vertices or the template a mirror map.
    """
    if sims.point_pred_vertex is None or sims.point_vertex is None:
        raise ValueError(
            "classify_points: the similarities have no predicted vertices per point; "
            "build them with dpeval.evaluation.prepare"
        )
    if template.mirror is None:
        raise ValueError(f"classify_points: template {template.id!r} has no mirror map")
    gv = np.asarray(sims.point_vertex)
    pv = np.asarray(sims.point_pred_vertex)
    mirror_dist = np.full(len(gv), np.inf)
    ok = (gv >= 0) & (pv >= 0) & np.isfinite(sims.point_dist)
    ok &= sims.point_dist >= CORRECT_THR  # the mirror only matters for errors
    if ok.any():
        mirror_dist[ok] = solver.pairs(np.asarray(template.mirror)[gv[ok]], pv[ok])
    return classify(sims.point_dist, sims.point_part, sims.point_pred_part, mirror_dist)


def taxonomy_counts(codes: np.ndarray, part: np.ndarray) -> Any:
    """Counts per category, per part and overall.

    Parameters
    ----------
    codes : (N,) int
        From :func:`classify_points` (-1 ignored).
    part : (N,) int
        GT part id of each point.

    Returns
    -------
    pandas.DataFrame
        Index: part ids 1..24 then ``"all"``; columns ``name``, one count column per
        category, ``n_points``. The ``all`` row is the sum of the part rows.
    """
    import pandas as pd

    codes = np.asarray(codes)
    part = np.asarray(part, dtype=np.int64)
    keep = codes >= 0
    table = np.zeros((N_PARTS + 1, len(CATEGORIES)), dtype=np.int64)
    np.add.at(table, (part[keep], codes[keep].astype(np.int64)), 1)
    df = pd.DataFrame(table[1:], columns=list(CATEGORIES), index=range(1, N_PARTS + 1))
    df.insert(0, "name", [PART_NAMES[p] for p in range(1, N_PARTS + 1)])
    total = df[list(CATEGORIES)].sum(axis=0)
    df.loc["all"] = ["all parts", *total.tolist()]
    df["n_points"] = df[list(CATEGORIES)].sum(axis=1)
    df.index.name = "part"
    return df


def part_confusion(sims: Similarities) -> Any:
    """(25, 25) counts of GT part (rows) vs predicted part (columns), 0 = background.

    Excluded points (NaN error) are left out; GT row 0 is always empty.

    Returns
    -------
    pandas.DataFrame
        Index ``gt_part`` 0..24, columns ``pred_part`` 0..24.
    """
    import pandas as pd

    if sims.point_pred_part is None:
        raise ValueError("part_confusion: the similarities have no predicted parts per point")
    keep = ~np.isnan(sims.point_dist)
    m = np.zeros((N_PARTS + 1, N_PARTS + 1), dtype=np.int64)
    np.add.at(m, (sims.point_part[keep], np.asarray(sims.point_pred_part)[keep]), 1)
    df = pd.DataFrame(m)
    df.index.name, df.columns.name = "gt_part", "pred_part"
    return df
