"""Insight stage: image-level bootstrap confidence intervals and paired comparisons.

In: :class:`~dpeval.evaluation.prepare.Similarities` and the ground truth. Out: pandas
DataFrames of every headline metric (AP of GPS paper kappa, GPS per-part kappa, GPSm,
mask IoU; AUC10, AUC30) with percentile 95% intervals, and for two models scored on
the same ground truth the paired difference B - A with its interval and a p-value.

The resampling unit is the image (COCO images are the independent draws; points and
people of one image are correlated). Nothing is recomputed per resample: the matching
of every mode is done once, then each resample only re-weights the images (an image
drawn k times counts k times) in a score-sorted cumulative sum (the Numba kernel
:func:`dpeval.insight._kernels.weighted_ap`, twin in :mod:`dpeval.insight._reference`), and
the pointwise AUCs are ratios of per-image sums. The number of resamples defaults to
:data:`DEFAULT_RESAMPLES` (1000), enough for 95% percentile intervals whose end points
move by well under one tenth of their width between seeds.

P-values are two-sided percentile bootstrap p-values:
``p = min(1, 2 * min(#(diff* <= 0) + 1, #(diff* >= 0) + 1) / (B + 1))``; identical
inputs give ``p = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.match import Matches, match
from ..evaluation.prepare import Similarities
from ..evaluation.run import ap_modes
from ..formats.model import GroundTruth
from ..params import AUC_RADII, INSIGHT_RESAMPLES, EvalParams
from ._kernels import weighted_ap

__all__ = [
    "AP_MODES",
    "DEFAULT_RESAMPLES",
    "HEADLINE_METRICS",
    "MetricTables",
    "bootstrap_metrics",
    "build_tables",
    "compare_metrics",
    "resample_weights",
]

DEFAULT_RESAMPLES = INSIGHT_RESAMPLES
"""Bootstrap resamples used unless asked otherwise (:data:`dpeval.params.INSIGHT_RESAMPLES`)."""

AP_MODES: tuple[tuple[str, str, str], ...] = tuple(ap_modes(("gps", "gpsm", "iou"), "per-part"))
"""(name, metric, kappa) of each AP whose interval is reported."""

HEADLINE_METRICS: tuple[str, ...] = (
    "gps_paper_AP",
    "gps_perpart_AP",
    "gpsm_AP",
    "iou_AP",
    "AUC10",
    "AUC30",
)
"""Names of the bootstrapped metrics, in print order."""

_AUC_RANGES = dict(AUC_RADII)


@dataclass(frozen=True)
class _ApTable:
    """Score-sorted detections of one (mode, category), area "all".

    det_image : (D,) int64 position of each detection's image in ``image_ids``
    tp, fp : (T, D) uint8 matched / unmatched and not ignored
    gt_per_image : (I,) float64 non-ignored GT per image
    """

    det_image: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    gt_per_image: np.ndarray


@dataclass(frozen=True)
class MetricTables:
    """Everything a resample needs, computed once from one model's similarities.

    Attributes
    ----------
    image_ids : list of int
        The resampling units (every GT image, sorted).
    ap : dict
        Metric name -> list of per-category tables (AP is their mean).
    auc_sum : dict
        ``AUC10``/``AUC30`` -> (I,) float64 per image sum of ``clip(1 - d/a, 0, 1)``.
    n_points : (I,) float64
        Valid GT points per image.
    rec_thrs : (R,) float64
    """

    image_ids: list[int]
    ap: dict[str, list[_ApTable]]
    auc_sum: dict[str, np.ndarray]
    n_points: np.ndarray
    rec_thrs: np.ndarray


def build_tables(
    sims: Similarities,
    gt: GroundTruth,
    *,
    max_dets: int = 20,
    min_iou: float = 0.5,
    protocol: str = "challenge2019",
    matches: dict[str, Matches] | None = None,
) -> MetricTables:
    """Match every mode once and keep the per-image arrays the bootstrap re-weights.

    Parameters
    ----------
    sims : Similarities
        Built with masks for GPSm and IoU (modes without masks are left out).
    gt : GroundTruth
    max_dets, min_iou, protocol
        As in :func:`dpeval.api.score`.
    matches : dict, optional
        Metric name (``gps_paper``...) -> :class:`~dpeval.evaluation.match.Matches`
        already computed with these parameters (saves the matching).

    Returns
    -------
    MetricTables
    """
    image_ids = sorted(gt.images)
    pos = {i: k for k, i in enumerate(image_ids)}
    cat_ids = sorted(gt.categories)
    has_masks = bool(sims.images) and sims.images[0].mask_iou is not None
    ap: dict[str, list[_ApTable]] = {}
    rec_thrs = EvalParams().rec_thrs
    for name, metric, kappa in AP_MODES:
        if metric != "gps" and not has_masks:
            continue
        params = EvalParams(
            metric=metric, kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets
        )  # type: ignore[arg-type]
        given = (matches or {}).get(name)
        m = (given if given is not None else match(sims, gt, params)).images
        rec_thrs = params.rec_thrs
        tables = []
        for cat in cat_ids:
            ms = [(pos[i], m[(i, cat, 0)]) for i in image_ids if (i, cat, 0) in m]
            if not ms:
                continue
            scores = np.concatenate([x.dt_scores for _, x in ms])
            order = np.argsort(-scores, kind="mergesort")
            det_image = np.concatenate(
                [np.full(len(x.dt_scores), p, dtype=np.int64) for p, x in ms]
            )[order]
            dtm = np.concatenate([x.dt_matched for _, x in ms], axis=1)[:, order]
            dtig = np.concatenate([x.dt_ignore for _, x in ms], axis=1)[:, order]
            gt_per_image = np.zeros(len(image_ids))
            for p, x in ms:
                gt_per_image[p] = float((~x.gt_ignore).sum())
            tables.append(
                _ApTable(
                    det_image,
                    np.ascontiguousarray(dtm & ~dtig, dtype=np.uint8),
                    np.ascontiguousarray(~dtm & ~dtig, dtype=np.uint8),
                    gt_per_image,
                )
            )
        ap[f"{name}_AP"] = tables

    ann_image = np.array([pos.get(a.image_id, -1) for a in gt.annotations], dtype=np.int64)
    keep = ~np.isnan(sims.point_dist)
    img = ann_image[sims.point_gt[keep]]
    d = sims.point_dist[keep]
    ok = img >= 0
    img, d = img[ok], d[ok]
    n_points = np.bincount(img, minlength=len(image_ids)).astype(np.float64)
    auc_sum = {
        k: np.bincount(img, weights=np.clip(1.0 - d / a, 0.0, 1.0), minlength=len(image_ids))
        for k, a in _AUC_RANGES.items()
    }
    return MetricTables(image_ids, ap, auc_sum, n_points, np.asarray(rec_thrs, dtype=np.float64))


def resample_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """(B, I) float64 image multiplicities of ``resamples`` draws with replacement; row
    0 is **not** the original sample (every row is a resample)."""
    rng = np.random.default_rng(seed)
    if n_images == 0:
        return np.zeros((resamples, 0))
    idx = rng.integers(0, n_images, size=(resamples, n_images))
    flat = (idx + np.arange(resamples)[:, None] * n_images).ravel()
    return np.bincount(flat, minlength=resamples * n_images).reshape(resamples, n_images) * 1.0


def _values(tables: MetricTables, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Metric name -> (B,) values under each weight row."""
    out = _ap_values(tables, weights)
    out.update(_auc_values(tables, weights))
    return out


def _ap_values(tables: MetricTables, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The AP part of :func:`_values`: each row is computed alone (any block of rows
    gives the same numbers), so Dask tasks can run blocks of resamples."""
    out: dict[str, np.ndarray] = {}
    for name, per_cat in tables.ap.items():
        if not per_cat:
            out[name] = np.full(len(weights), np.nan)
            continue
        vals = np.stack(
            [
                weighted_ap(t.det_image, t.tp, t.fp, t.gt_per_image, weights, tables.rec_thrs)
                for t in per_cat
            ]
        )
        with np.errstate(invalid="ignore"):
            out[name] = np.nanmean(vals, axis=0) if len(per_cat) > 1 else vals[0]
    return out


def _auc_values(tables: MetricTables, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The AUC part of :func:`_values`: matrix products whose last bits depend on the
    number of rows (BLAS blocking), so they always run on the whole weight matrix."""
    out: dict[str, np.ndarray] = {}
    n = weights @ tables.n_points
    for k, s in tables.auc_sum.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(n > 0, (weights @ s) / np.where(n > 0, n, 1), np.nan)
    return out


def bootstrap_metrics(
    tables: MetricTables,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    client: Any = None,
) -> Any:
    """Point estimates and percentile bootstrap intervals of every headline metric.

    Parameters
    ----------
    tables : MetricTables
        From :func:`build_tables`.
    resamples : int
        Number of image resamples B.
    seed : int
    level : float
        Interval coverage.
    client : dask.distributed.Client, optional
        Run blocks of resamples as tasks on this cluster
        (:func:`dpeval.insight.sharded.bootstrap_values`); the weights are drawn here from
        ``seed``, so the numbers equal the local run's.

    Returns
    -------
    pandas.DataFrame
        Indexed by metric name; columns ``value`` (full data), ``ci_low``, ``ci_high``,
        ``std`` (bootstrap standard error), ``resamples``, ``seed``.

    Example
    -------
    >>> df = bootstrap_metrics(build_tables(sims, gt), resamples=200)  # doctest: +SKIP
    """
    import pandas as pd

    w = resample_weights(len(tables.image_ids), resamples, seed)
    full = _values(tables, np.ones((1, len(tables.image_ids))))
    if client is None:
        boot = _values(tables, w)
    else:
        from .sharded import bootstrap_values

        boot = bootstrap_values(client, [tables], w)[0]
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for name in HEADLINE_METRICS:
        if name not in boot:
            continue
        b = boot[name][~np.isnan(boot[name])]
        lo, hi = np.quantile(b, [lo_q, hi_q]) if len(b) else (np.nan, np.nan)
        rows.append(
            {
                "metric": name,
                "value": float(full[name][0]),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "std": float(b.std(ddof=1)) if len(b) > 1 else float("nan"),
                "resamples": resamples,
                "seed": seed,
            }
        )
    return pd.DataFrame(rows).set_index("metric")


def _p_value(diff: np.ndarray) -> float:
    n = len(diff)
    if n == 0:
        return float("nan")
    below = int((diff <= 0).sum()) + 1
    above = int((diff >= 0).sum()) + 1
    return float(min(1.0, 2.0 * min(below, above) / (n + 1)))


def compare_metrics(
    a: MetricTables,
    b: MetricTables,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    client: Any = None,
) -> Any:
    """Paired image bootstrap of B - A for every headline metric.

    Both tables must come from the same ground truth (the same images are drawn for
    both models in each resample, which removes the between-image variance they share).
    With a Dask ``client``, blocks of resamples run as tasks on its cluster (same numbers).

    Returns
    -------
    pandas.DataFrame
        Indexed by metric; columns ``a``, ``b``, ``diff`` (b - a, full data),
        ``ci_low``, ``ci_high``, ``p_value``, ``resamples``, ``seed``.

    Raises
    ------
    ValueError
        The two tables are not on the same images.
    """
    import pandas as pd

    if a.image_ids != b.image_ids:
        raise ValueError(
            "compare: the two models were scored on different ground-truth images; "
            "score both against the same GT file"
        )
    w = resample_weights(len(a.image_ids), resamples, seed)
    ones = np.ones((1, len(a.image_ids)))
    fa, fb = _values(a, ones), _values(b, ones)
    if client is None:
        ba, bb = _values(a, w), _values(b, w)
    else:
        from .sharded import bootstrap_values

        ba, bb = bootstrap_values(client, [a, b], w)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for name in HEADLINE_METRICS:
        if name not in ba or name not in bb:
            continue
        d = bb[name] - ba[name]
        d = d[~np.isnan(d)]
        lo, hi = np.quantile(d, [lo_q, hi_q]) if len(d) else (np.nan, np.nan)
        rows.append(
            {
                "metric": name,
                "a": float(fa[name][0]),
                "b": float(fb[name][0]),
                "diff": float(fb[name][0] - fa[name][0]),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": _p_value(d),
                "resamples": resamples,
                "seed": seed,
            }
        )
    return pd.DataFrame(rows).set_index("metric")
