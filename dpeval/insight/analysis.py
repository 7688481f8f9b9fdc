"""Insight stage entry points: score once, then derive every table of the report.

In: predictions and ground truth (paths or loaded objects). Out: :class:`Insight`, the
official :class:`~dpeval.summary.Summary` plus DataFrames (intervals, per part, RCP,
taxonomy, confusion, worst instances), and :func:`compare` for two models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation.prepare import Similarities
from ..formats.model import GroundTruth, Predictions
from ..summary import Summary
from ..template import BodyTemplate, load_template
from .bootstrap import DEFAULT_RESAMPLES, MetricTables, bootstrap_metrics, build_tables
from .bootstrap import compare_metrics as _compare_tables
from .tables import coarse_part_errors, instance_table, part_errors, rcp_curves
from .taxonomy import classify_points, part_confusion, taxonomy_counts

__all__ = ["Insight", "ScoredTables", "analyze", "compare", "score_tables"]

log = logging.getLogger(__name__)


@dataclass
class Insight:
    """Everything the report shows, for notebooks.

    Attributes
    ----------
    summary : Summary
        The official numbers (same as ``dpeval score``).
    intervals : pandas.DataFrame
        :func:`~dpeval.insight.bootstrap.bootstrap_metrics`.
    per_part, coarse_parts : pandas.DataFrame
        :func:`~dpeval.insight.tables.part_errors` / ``coarse_part_errors``.
    rcp : pandas.DataFrame
        :func:`~dpeval.insight.tables.rcp_curves`.
    taxonomy : pandas.DataFrame
        :func:`~dpeval.insight.taxonomy.taxonomy_counts`.
    confusion : pandas.DataFrame
        :func:`~dpeval.insight.taxonomy.part_confusion`.
    instances : pandas.DataFrame
        :func:`~dpeval.insight.tables.instance_table`, worst first.
    point_category : (N,) int8
        Taxonomy code of each GT point.
    oracles : pandas.DataFrame or None
        :func:`~dpeval.insight.oracle.oracle_table` ("what if the parts were perfect"),
        None when ``analyze(..., oracles=False)``.
    """

    summary: Summary
    intervals: Any
    per_part: Any
    coarse_parts: Any
    rcp: Any
    taxonomy: Any
    confusion: Any
    instances: Any
    point_category: np.ndarray
    sims: Similarities
    gt: GroundTruth
    preds: Predictions
    template: BodyTemplate
    options: dict[str, Any] = field(default_factory=dict)
    oracles: Any = None

    def figures(self) -> dict[str, Any]:
        """Name -> matplotlib Figure of every report figure except the gallery."""
        from . import figures as F

        return {
            "per_part": F.part_bar_figure(self.per_part, "Per part (24 DensePose charts)"),
            "coarse_parts": F.part_bar_figure(self.coarse_parts, "Per coarse part"),
            "rcp": F.rcp_figure(self.rcp),
            "body_error": F.body_error_figure(
                self.template,
                F.vertex_error(self.template, self.sims.point_vertex, self.sims.point_dist),
            ),
            "taxonomy": F.taxonomy_figure(self.taxonomy),
            "confusion": F.confusion_figure(self.confusion),
        }


@dataclass(frozen=True)
class ScoredTables:
    """One model scored once: the official numbers and the bootstrap tables.

    Attributes
    ----------
    summary : Summary
        The official numbers (same as ``dpeval score``).
    sims : Similarities
    tables : MetricTables
        :func:`~dpeval.insight.bootstrap.build_tables` of the same similarities.
    gt : GroundTruth
    preds : Predictions
        As read and checked.
    template : BodyTemplate
    solver : GeodesicSolver
        The solver used (reuse it to score another model on the same template).
    """

    summary: Summary
    sims: Similarities
    tables: MetricTables
    gt: GroundTruth
    preds: Predictions
    template: BodyTemplate
    solver: Any


def score_tables(
    preds: Any,
    gt: Any,
    *,
    template: BodyTemplate | str = "open",
    protocol: str = "challenge2019",
    kappa: str = "per-part",
    min_iou: float = 0.5,
    max_dets: int = 20,
    workers: int = 2,
    solver: Any = None,
    client: Any = None,
) -> ScoredTables:
    """Score once (the official numbers) and build the bootstrap tables from the same
    similarities.

    Raises
    ------
    ParamsError
        Image-level dense maps (they have no AP).
    FormatError
        Malformed or inconsistent inputs.
    """
    from ..api import make_summary
    from ..errors import ParamsError
    from ..evaluation import evaluate_similarities, prepare
    from ..evaluation.inputs import read_inputs
    from ..formats.consistency import check_images

    tpl = load_template(template) if isinstance(template, str) else template
    p, g = read_inputs(preds, gt)
    if p.kind != "instances":
        raise ParamsError(
            f"{p.source}: dpeval report needs instance predictions (image-level dense maps "
            "have no AP); use dpeval score --metric points"
        )
    p, _ = check_images(p, g, False)
    if solver is None:
        from ..geodesic import GeodesicSolver

        solver = GeodesicSolver(tpl)
    sims = prepare(
        p, g, tpl, solver, protocol=protocol, with_masks=True, max_dets=max_dets,
        workers=workers, client=client,
    )  # fmt: skip
    out = evaluate_similarities(
        sims,
        g,
        ["gps", "gpsm", "iou", "points"],
        kappa=kappa,
        protocol=protocol,
        min_iou=min_iou,
        max_dets=max_dets,
    )
    summary = make_summary(tpl, p, g, out, protocol=protocol)
    tables = build_tables(sims, g, max_dets=max_dets, min_iou=min_iou, protocol=protocol)
    return ScoredTables(summary, sims, tables, g, p, tpl, solver)


def analyze(
    preds: Any,
    gt: Any,
    *,
    template: BodyTemplate | str = "open",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    protocol: str = "challenge2019",
    min_iou: float = 0.5,
    max_dets: int = 20,
    workers: int = 2,
    solver: Any = None,
    oracles: bool = True,
    client: Any = None,
) -> Insight:
    """Score and analyse one model: intervals, per part, RCP, taxonomy, worst people.

    Parameters
    ----------
    preds, gt : path or loaded object
        Instance predictions and DensePose-COCO ground truth.
    template : BodyTemplate or str
    resamples, seed : int
        Image bootstrap (``resamples`` draws, seeded).
    protocol, min_iou, max_dets, workers
        As in :func:`dpeval.api.score`.
    oracles : bool
        Also score the official upper-bound modes (one more geodesic pass per mode; no
        mask work).
    client : dask.distributed.Client, optional
        Decode the images and run the bootstrap resamples on this cluster (same numbers).

    Returns
    -------
    Insight

    Example
    -------
    >>> ins = analyze("examples/preds.json", "examples/gt.json", resamples=200)  # doctest: +SKIP
    >>> ins.intervals.loc["gps_perpart_AP"]  # doctest: +SKIP
    """
    st = score_tables(
        preds, gt, template=template, protocol=protocol, min_iou=min_iou,
        max_dets=max_dets, workers=workers, solver=solver, client=client,
    )  # fmt: skip
    sims, g, p, tpl, solver = st.sims, st.gt, st.preds, st.template, st.solver
    intervals = bootstrap_metrics(st.tables, resamples=resamples, seed=seed, client=client)
    codes = classify_points(sims, tpl, solver)
    table = None
    if oracles:
        from .oracle import oracle_table

        table = oracle_table(
            g, p, tpl, solver, sims, protocol=protocol, min_iou=min_iou,
            max_dets=max_dets, workers=workers, client=client,
        )  # fmt: skip
    area_of = np.array([a.area for a in g.annotations], dtype=np.float64)
    return Insight(
        summary=st.summary,
        intervals=intervals,
        per_part=part_errors(sims.point_dist, sims.point_part),
        coarse_parts=coarse_part_errors(sims.point_dist, sims.point_part),
        rcp=rcp_curves(sims.point_dist, sims.point_part, area_of[sims.point_gt]),
        taxonomy=taxonomy_counts(codes, sims.point_part),
        confusion=part_confusion(sims),
        instances=instance_table(sims, g),
        point_category=codes,
        sims=sims,
        gt=g,
        preds=p,
        template=tpl,
        options={"resamples": resamples, "seed": seed, "protocol": protocol,
                 "min_iou": min_iou, "max_dets": max_dets},
        oracles=table,
    )  # fmt: skip


def compare(
    preds_a: Any,
    preds_b: Any,
    gt: Any,
    *,
    template: BodyTemplate | str = "open",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    protocol: str = "challenge2019",
    min_iou: float = 0.5,
    max_dets: int = 20,
    workers: int = 2,
    client: Any = None,
) -> Any:
    """Paired image bootstrap of model B minus model A on the same ground truth.

    With a Dask ``client``, the images are decoded and the resamples run on its cluster
    (same numbers).

    Returns
    -------
    pandas.DataFrame
        :func:`~dpeval.insight.bootstrap.compare_metrics`.
    """
    from ..formats import load_ground_truth

    tpl = load_template(template) if isinstance(template, str) else template
    g = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    opts = dict(template=tpl, protocol=protocol, min_iou=min_iou, max_dets=max_dets,
                workers=workers, client=client)  # fmt: skip
    a = score_tables(preds_a, g, **opts)
    b = score_tables(preds_b, g, solver=a.solver, **opts)
    return _compare_tables(a.tables, b.tables, resamples=resamples, seed=seed, client=client)
