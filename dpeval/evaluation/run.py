"""Evaluation core: every requested metric on precomputed similarities.

In: :class:`~dpeval.evaluation.prepare.Similarities` and the ground truth they were
computed on. Out: the ``metrics`` / ``stats`` / ``official_summary`` / ``per_part``
blocks of a :class:`~dpeval.summary.Summary`, each AP/AR mode through
:func:`~dpeval.evaluation.match.match`, :func:`~dpeval.evaluation.accumulate.accumulate`
and :func:`~dpeval.evaluation.summarize.summarize`. Shared by the API, the streaming
metric, insight, the leaderboard and the CSE path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formats.model import GroundTruth
from ..params import RCP_GRID, EvalParams
from .accumulate import Accumulated, accumulate
from .match import Matches, match
from .points import point_metrics
from .prepare import Similarities
from .summarize import Stats, per_category_ap, summarize

__all__ = ["ModeResult", "ap_modes", "evaluate_mode", "evaluate_similarities", "points_block"]


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


def ap_modes(wanted: Sequence[str], kappa: str) -> list[tuple[str, str, str]]:
    """(result key, metric, kappa) of each AP/AR run that ``wanted`` asks for.

    GPS is always run with both kappas (``gps_paper``, ``gps_perpart``); GPSm and IoU
    with ``kappa``.

    Example
    -------
    >>> ap_modes(["gps", "iou"], "per-part")
    [('gps_paper', 'gps', 'paper'), ('gps_perpart', 'gps', 'per-part'), ('iou', 'iou', 'per-part')]
    """
    runs = []
    if "gps" in wanted:
        runs += [("gps_paper", "gps", "paper"), ("gps_perpart", "gps", "per-part")]
    if "gpsm" in wanted:
        runs.append(("gpsm", "gpsm", kappa))
    if "iou" in wanted:
        runs.append(("iou", "iou", kappa))
    return runs


@dataclass(frozen=True)
class ModeResult:
    """One AP/AR mode, every stage kept.

    Attributes
    ----------
    params : EvalParams
    matches : Matches
    accumulated : Accumulated
    stats : Stats
    """

    params: EvalParams
    matches: Matches
    accumulated: Accumulated
    stats: Stats


def evaluate_mode(sims: Similarities, gt: GroundTruth, params: EvalParams) -> ModeResult:
    """match -> accumulate -> summarize of one mode on precomputed similarities."""
    m = match(sims, gt, params)
    acc = accumulate(m, params)
    return ModeResult(params, m, acc, summarize(acc, params))


def evaluate_similarities(
    sims: Similarities,
    gt: GroundTruth,
    wanted: Sequence[str],
    *,
    kappa: str,
    protocol: str,
    min_iou: float,
    max_dets: int,
    label: Callable[[str, EvalParams], str] | None = None,
    per_category: bool = False,
) -> dict[str, Any]:
    """AP/AR for each wanted mode and the pointwise block, from one set of similarities.

    Parameters
    ----------
    sims : Similarities
    gt : GroundTruth
        The ground truth ``sims`` were computed on.
    wanted : sequence of str
        Among ``gps``, ``gpsm``, ``iou``, ``points``.
    kappa, protocol, min_iou, max_dets
        As :func:`dpeval.score`.
    label : callable, optional
        ``label(key, params)`` -> the metric version label (default ``params.label``).
    per_category : bool
        Also return ``per_category``: key -> category name -> AP (only with more than
        one category; empty otherwise).

    Returns
    -------
    dict
        ``metrics``, ``stats``, ``official_summary``, ``per_part`` (and ``per_category``).
    """
    out: dict[str, Any] = {"metrics": {}, "stats": {}, "official_summary": {}, "per_part": []}
    per_cat: dict[str, dict[str, float]] = {}
    for key, metric, k in ap_modes(wanted, kappa):
        params = EvalParams(
            metric=metric, kappa=k, protocol=protocol, min_iou=min_iou, max_dets=max_dets
        )  # type: ignore[arg-type]
        res = evaluate_mode(sims, gt, params)
        out["official_summary"][key] = list(res.stats.lines)
        out["stats"][key] = [float(x) for x in res.stats.values]
        named: dict[str, Any] = dict(res.stats.named)
        named["label"] = label(key, params) if label is not None else params.label
        out["metrics"][key] = named
        if per_category and len(gt.categories) > 1:
            aps = per_category_ap(res.accumulated, res.matches.cat_ids)
            per_cat[key] = {gt.categories.get(c) or str(c): v for c, v in aps.items()}
    if "points" in wanted:
        out["metrics"]["points"], out["per_part"] = points_block(sims.point_dist, sims.point_part)
    if per_category:
        out["per_category"] = per_cat
    return out
