"""Run every requested metric on precomputed similarities (shared by the API and the
streaming metric)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..formats.model import GroundTruth, Predictions
from ..params import EvalParams
from ..template import BodyTemplate
from .cocoeval import DensePoseEval
from .points import RCP_GRID, point_metrics
from .prepare import Similarities

__all__ = ["evaluate_similarities", "points_block"]


def points_block(dist: np.ndarray, part: np.ndarray) -> tuple[dict[str, Any], list[dict]]:
    """The ``metrics["points"]`` entry and the per-part rows."""
    pm = point_metrics(dist, part)
    block = {
        "AUC10": pm.auc10,
        "AUC30": pm.auc30,
        "n_points": pm.n_points,
        "RCP": {"t_m": [float(t) for t in RCP_GRID], "ratio": [float(r) for r in pm.rcp]},
    }
    return block, pm.per_part


def evaluate_similarities(
    sims: Similarities,
    gt: GroundTruth,
    template: BodyTemplate,
    wanted: list[str],
    *,
    kappa: str,
    protocol: str,
    min_iou: float,
    max_dets: int,
) -> dict[str, Any]:
    """AP/AR for each wanted mode and the pointwise block, from one set of similarities.

    Returns
    -------
    dict
        ``metrics``, ``stats``, ``official_summary``, ``per_part``.
    """
    out: dict[str, Any] = {"metrics": {}, "stats": {}, "official_summary": {}, "per_part": []}
    runs = []
    if "gps" in wanted:
        runs += [("gps_paper", "gps", "paper"), ("gps_perpart", "gps", "per-part")]
    if "gpsm" in wanted:
        runs.append(("gpsm", "gpsm", kappa))
    if "iou" in wanted:
        runs.append(("iou", "iou", kappa))
    empty = Predictions("instances")
    for key, metric, k in runs:
        params = EvalParams(
            metric=metric, kappa=k, protocol=protocol, min_iou=min_iou, max_dets=max_dets
        )  # type: ignore[arg-type]
        ev = DensePoseEval(
            gt, empty, template=template, params=params, solver=False, similarities=sims
        )
        ev.evaluate()
        ev.accumulate()
        out["official_summary"][key] = ev.summarize()
        out["stats"][key] = [float(x) for x in ev.stats]
        named: dict[str, Any] = dict(ev.stats_as_dict())
        named["label"] = params.label
        out["metrics"][key] = named
    if "points" in wanted:
        out["metrics"]["points"], out["per_part"] = points_block(sims.point_dist, sims.point_part)
    return out
