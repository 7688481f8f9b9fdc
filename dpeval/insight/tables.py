"""Insight stage: per-part, per-coarse-part, per-area and per-instance tables.

In: :class:`~dpeval.evaluation.prepare.Similarities` and the ground truth. Out: pandas
DataFrames that the figures and the HTML report draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.points import auc, ratio_correct_points
from ..formats.model import GroundTruth
from ..params import AUC10_RADIUS, AUC30_RADIUS, KAPPA_PER_PART, RCP_GRID
from ..template import COARSE_PART, N_PARTS, PART_NAMES

__all__ = [
    "AREA_BINS",
    "COARSE_NAMES",
    "coarse_part_errors",
    "instance_table",
    "part_errors",
    "point_gps",
    "rcp_curves",
]

COARSE_NAMES: tuple[str, ...] = (
    "background", "torso", "hands", "feet", "upper legs", "lower legs", "upper arms",
    "lower arms", "head",
)  # fmt: skip
"""Name of each coarse part id (index = id, :data:`dpeval.template.COARSE_PART`)."""

AREA_BINS: tuple[tuple[str, float, float], ...] = (
    ("small (< 32²)", 0.0, 32.0**2),
    ("medium (32²-96²)", 32.0**2, 96.0**2),
    ("large (> 96²)", 96.0**2, 1e10),
)
"""GT area ranges (pixels) of the RCP-per-area curves."""


def point_gps(dist: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Per-point GPS term ``exp(-d^2 / (2 kappa_part^2))`` (0 for a miss, NaN kept)."""
    d = np.asarray(dist, dtype=np.float64)
    k = np.asarray(KAPPA_PER_PART)[np.asarray(part, dtype=np.int64)]
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(d), 0.0, np.exp(-(d**2) / (2 * k**2)))


def part_errors(dist: np.ndarray, part: np.ndarray) -> Any:
    """Pointwise numbers per part (1..24) plus an ``all`` row.

    Parameters
    ----------
    dist : (N,) float
        Geodesic error in metres (inf miss, NaN excluded), ``Similarities.point_dist``.
    part : (N,) int
        GT part ids.

    Returns
    -------
    pandas.DataFrame
        Index part id then ``"all"``; columns ``name``, ``coarse``, ``n_points``,
        ``n_missed``, ``mean_error_cm`` and ``median_error_cm`` (points with a
        prediction), ``miss_rate``, ``gps`` (mean per-point GPS with the per-part kappa,
        misses count 0), ``auc10``, ``auc30``. ``n_points``/``n_missed`` of ``all`` are
        the sums of the part rows, and its ``gps`` the ``n_points``-weighted mean.
    """
    import pandas as pd

    d_all = np.asarray(dist, dtype=np.float64)
    p_all = np.asarray(part, dtype=np.int64)
    keep = ~np.isnan(d_all)
    d_all, p_all = d_all[keep], p_all[keep]
    g_all = point_gps(d_all, p_all)

    def row(sel: np.ndarray) -> dict[str, Any]:
        d = d_all[sel]
        fin = d[np.isfinite(d)]
        n = len(d)
        return {
            "n_points": n,
            "n_missed": int(n - len(fin)),
            "mean_error_cm": float(fin.mean() * 100) if len(fin) else np.nan,
            "median_error_cm": float(np.median(fin) * 100) if len(fin) else np.nan,
            "miss_rate": float(1 - len(fin) / n) if n else np.nan,
            "gps": float(g_all[sel].mean()) if n else np.nan,
            "auc10": auc(d, AUC10_RADIUS),
            "auc30": auc(d, AUC30_RADIUS),
        }

    rows = {}
    for p in range(1, N_PARTS + 1):
        rows[p] = {"name": PART_NAMES[p], "coarse": COARSE_NAMES[COARSE_PART[p]]}
        rows[p].update(row(p_all == p))
    rows["all"] = {"name": "all parts", "coarse": "all"}
    rows["all"].update(row(np.ones(len(d_all), dtype=bool)))
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "part"
    return df


def coarse_part_errors(dist: np.ndarray, part: np.ndarray) -> Any:
    """Like :func:`part_errors` for the 8 coarse parts (index 1..8, then ``all``)."""
    p = np.asarray(part, dtype=np.int64)
    coarse = np.asarray(COARSE_PART)[np.clip(p, 0, N_PARTS)]
    df = part_errors(dist, coarse)
    df = df.loc[[*range(1, 9), "all"]].copy()
    df["name"] = [*COARSE_NAMES[1:], "all parts"]
    df["coarse"] = df["name"]
    return df


def rcp_curves(dist: np.ndarray, part: np.ndarray, point_area: np.ndarray) -> Any:
    """RCP curves overall, per coarse part and per GT area range.

    Parameters
    ----------
    dist, part : (N,)
        As in :func:`part_errors`.
    point_area : (N,) float
        Area (pixels) of each point's GT person.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` ("overall", "coarse", "area"), ``label``, ``n_points``,
        ``auc10``, ``auc30``, ``t_cm`` (list) and ``rcp`` (list, fraction).
    """
    import pandas as pd

    d = np.asarray(dist, dtype=np.float64)
    keep = ~np.isnan(d)
    d = d[keep]
    p = np.asarray(part, dtype=np.int64)[keep]
    area = np.asarray(point_area, dtype=np.float64)[keep]
    coarse = np.asarray(COARSE_PART)[p]
    sets = [("overall", "all points", np.ones(len(d), dtype=bool))]
    sets += [("coarse", COARSE_NAMES[c], coarse == c) for c in range(1, 9)]
    sets += [("area", name, (area >= lo) & (area < hi)) for name, lo, hi in AREA_BINS]
    rows = []
    for group, label, sel in sets:
        x = d[sel]
        rows.append(
            {
                "group": group,
                "label": label,
                "n_points": len(x),
                "auc10": auc(x, AUC10_RADIUS),
                "auc30": auc(x, AUC30_RADIUS),
                "t_cm": (RCP_GRID * 100).tolist(),
                "rcp": ratio_correct_points(x).tolist(),
            }
        )
    return pd.DataFrame(rows)


def instance_table(sims: Any, gt: GroundTruth) -> Any:
    """One row per dense GT person: its best detection and pointwise error.

    Returns
    -------
    pandas.DataFrame
        Columns ``ann_index``, ``image_id``, ``area``, ``n_points``, ``best_gps``
        (highest per-part GPS over the detections, 0 without any), ``det_index`` (-1
        none), ``mean_error_cm`` (finite errors), ``miss_rate``; sorted by
        ``best_gps`` ascending (worst first).
    """
    import pandas as pd

    anns = gt.annotations
    best = {}
    for s in sims.images:
        for j, g in enumerate(s.gt_index):
            if len(s.det_index):
                k = int(np.argmax(s.gps_per_part[:, j]))
                best[int(g)] = (float(s.gps_per_part[k, j]), int(s.det_index[k]))
    pg = np.asarray(sims.point_gt)
    d = np.asarray(sims.point_dist)
    keep = ~np.isnan(d)
    rows = []
    for g in np.unique(pg):
        sel = (pg == g) & keep
        x = d[sel]
        fin = x[np.isfinite(x)]
        gps, det = best.get(int(g), (0.0, -1))
        a = anns[int(g)]
        if a.iscrowd:
            continue
        rows.append(
            {
                "ann_index": int(g),
                "image_id": int(a.image_id),
                "area": float(a.area),
                "n_points": len(x),
                "best_gps": gps,
                "det_index": det,
                "mean_error_cm": float(fin.mean() * 100) if len(fin) else np.nan,
                "miss_rate": float(1 - len(fin) / len(x)) if len(x) else np.nan,
            }
        )
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values(["best_gps", "ann_index"], kind="mergesort").reset_index(drop=True)
    return df
