"""Evaluation core, summarize stage: the official 18 numbers and the named AP/AR.

In: :class:`~dpeval.evaluation.accumulate.Accumulated` and
:class:`~dpeval.params.EvalParams`. Out: :class:`Stats`, the official 18-line summary
(AP[.50:.95], AP at each threshold, AP medium/large, AR[.50:.95], AR@0.50, AR@0.75, AR
medium/large) and the detectron2-style numbers named in
:data:`~dpeval.params.AP_AR_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import AP_AR_NAMES, THR_LOOKUP_TOL, EvalParams
from .accumulate import Accumulated

__all__ = ["Stats", "mean_value", "per_category_ap", "stats_as_dict", "summarize"]

_EXTRA_AP_THRS = (0.2, 0.3, 0.4)  # reported as AP20/AP30/AP40 when min_iou reaches them


@dataclass(frozen=True)
class Stats:
    """The summary of one accumulated evaluation.

    Attributes
    ----------
    values : (18,) float64
        The official numbers (pycocotools' ``stats``); -1 where undefined.
    lines : tuple of str
        Their official summary lines.
    named : dict
        :func:`stats_as_dict`.
    """

    values: np.ndarray
    lines: tuple[str, ...]
    named: dict[str, float]


def mean_value(
    acc: Accumulated, params: EvalParams, ap: bool, thr: float | None = None, area: str = "all"
) -> float:
    """Mean precision (``ap``) or recall over the defined entries of one setting.

    Thresholds are looked up with a 0.001 tolerance for AP and AR alike (the original
    AR lookup uses exact float equality, which gives the same result for 0.50 and 0.75).
    """
    a = [name for name, _, _ in params.area_ranges].index(area)
    s = acc.precision if ap else acc.recall
    if thr is not None:
        s = s[np.flatnonzero(np.abs(thr - params.iou_thrs) < THR_LOOKUP_TOL)]
    s = s[:, :, :, a, 0] if ap else s[:, :, a, 0]
    valid = s[s > -1]
    return float(valid.mean()) if valid.size else -1.0


def _rows(params: EvalParams) -> list[tuple[bool, float | None, str]]:
    rows: list[tuple[bool, float | None, str]] = [(True, None, "all")]
    rows += [(True, float(t), "all") for t in params.iou_thrs]
    rows += [(True, None, "medium"), (True, None, "large"), (False, None, "all")]
    rows += [(False, 0.5, "all"), (False, 0.75, "all")]
    return [*rows, (False, None, "medium"), (False, None, "large")]


def stats_as_dict(acc: Accumulated, params: EvalParams) -> dict[str, float]:
    """The ten detectron2-style numbers as fractions, in :data:`~dpeval.params.AP_AR_NAMES`
    order after ``AP`` (plus AP20/AP30/AP40 when ``min_iou`` allows them)."""
    how: dict[str, tuple[bool, float | None, str]] = {}
    for name in AP_AR_NAMES:
        ap, rest = name[:2] == "AP", name[2:]
        thr = int(rest) / 100 if rest.isdigit() else None
        area = {"m": "medium", "l": "large"}.get(rest, "all")
        how[name] = (ap, thr, area)
    out = {"AP": mean_value(acc, params, True)}
    for t in _EXTRA_AP_THRS:
        if params.iou_thrs.min() <= t + THR_LOOKUP_TOL:
            out[f"AP{int(t * 100)}"] = mean_value(acc, params, True, t)
    for name in AP_AR_NAMES[1:]:
        out[name] = mean_value(acc, params, *how[name])
    return out


def summarize(acc: Accumulated, params: EvalParams) -> Stats:
    """The official 18 numbers, their lines and the named numbers.

    Parameters
    ----------
    acc : Accumulated
    params : EvalParams
        The parameters of the accumulation.

    Returns
    -------
    Stats

    Example
    -------
    >>> stats = summarize(accumulate(match(sims, gt, params), params), params)  # doctest: +SKIP
    >>> stats.named["AP"]  # doctest: +SKIP
    """
    lo = f"{params.iou_thrs[0]:0.2f}:{params.iou_thrs[-1]:0.2f}"
    values, lines = [], []
    for ap, thr, area in _rows(params):
        v = mean_value(acc, params, ap, thr, area)
        values.append(v)
        title = "Average Precision  (AP)" if ap else "Average Recall     (AR)"
        thr_s = lo if thr is None else f"{thr:0.2f}"
        lines.append(
            f" {title} @[ OGPS={thr_s:<9} | area={area:>6s} | maxDets={params.max_dets:>3d} ]"
            f" = {v:0.3f}"
        )
    return Stats(np.array(values), tuple(lines), stats_as_dict(acc, params))


def per_category_ap(acc: Accumulated, cat_ids: tuple[int, ...]) -> dict[int, float]:
    """AP (area "all") of each category id; -1 where a category has no non-ignored GT."""
    prec = acc.precision[:, :, :, 0, 0]
    out = {}
    for c, cat in enumerate(cat_ids):
        v = prec[:, :, c][prec[:, :, c] > -1]
        out[cat] = float(v.mean()) if v.size else -1.0
    return out
