"""The Python API: ``dpeval.score(preds, gt, **options) -> Summary``.

Thin: it reads the inputs (paths or loaded objects), checks them against each other,
computes the similarities once and runs every requested metric on them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .errors import FormatError, ParamsError, with_hint
from .params import ORACLES, EvalParams
from .summary import Summary, make_summary
from .template import BodyTemplate, load_template

__all__ = ["METRICS", "make_summary", "score"]

log = logging.getLogger(__name__)

METRICS = ("gps", "gpsm", "iou", "points", "all")


def score(
    preds: Any,
    gt: Any,
    *,
    template: BodyTemplate | str = "open",
    metrics: str | Sequence[str] = "all",
    kappa: str = "per-part",
    protocol: str = "challenge2019",
    min_iou: float = 0.5,
    max_dets: int = 20,
    workers: int = 2,
    allow_unknown_images: bool = False,
    solver: Any = None,
    progress: Callable[[int], None] | None = None,
    meshes: Any = None,
    mesh_registry: Any = None,
    vertex_embeddings: Any = None,
    checkpoint: Any = None,
    mesh_basis: Any = None,
    storage: Any = None,
    storage_shape: Sequence[int] | None = None,
    geodists: Any = None,
    oracle: str | None = None,
    client: Any = None,
) -> Summary:
    """Score DensePose predictions against ground truth.

    Parameters
    ----------
    preds : path or Predictions
        Any supported prediction format (detected by content).
    gt : path, dict or GroundTruth
        DensePose-COCO ground truth.
    template : BodyTemplate or str
        ``"open"`` (default) or a directory with the official files.
    metrics : str or sequence of str
        Among ``gps`` (GPS AP/AR with both kappas), ``gpsm``, ``iou``, ``points`` (RCP,
        AUC10, AUC30) or ``all``.
    kappa : {"per-part", "paper"}
        Kappa of GPSm (GPS is always reported with both).
    protocol : {"challenge2019", "detectron2"}
        Mask and point-bound rules where the two official codes differ (default:
        the 2019 challenge code).
    min_iou, max_dets : float, int
        Lowest threshold (0.5; 0.2 gives APex) and detections kept per image.
    workers : int
        Threads decoding IUV maps.
    allow_unknown_images : bool
        Leave out (with one counted warning) predictions on images absent from the GT
        instead of failing.
    solver : GeodesicSolver, optional
    progress : callable, optional
        Called with the number of images done.
    meshes, mesh_registry, vertex_embeddings, checkpoint, mesh_basis : optional
        Continuous Surface Embeddings predictions (detected by content) are scored with
        :func:`dpeval.cse.score_cse` on these meshes (``{name: file}`` or ``NAME=FILE``
        lists; the ``open`` template is built in) and vertex embeddings (files or
        arrays, or a detectron2 checkpoint plus ``phi`` bases); always with
        detectron2's rules (``protocol`` is ignored there).
    storage, storage_shape : optional
        detectron2 ``DensePoseEvaluatorStorage.{rank}.bin`` files and their (K, D, S).
    geodists : optional
        ``{mesh: geodists_<mesh>.pkl}``: full geodesic tables used as they are (legacy
        mode) instead of dpeval's engine.
    oracle : str, optional
        An upper-bound mode of the official evaluator (:data:`dpeval.params.ORACLES`:
        ``gt-parts``, ``gt-parts-uv0``, ``uv0``, ``gt-iuv``): GT quantities replace the
        predicted ones at every GT point inside a detection box. The summary is
        labelled with it (``Summary.oracle``); masks and IoU are unchanged.
    client : dask.distributed.Client, optional
        Decode and sample the images on this cluster's workers (sharded by image; the
        template's lookup table is shipped once per worker); geodesics, matching and
        accumulation run here. The numbers are identical to a local run. Used for
        instance predictions (CSE and image-level dense maps are scored here).

    Returns
    -------
    Summary

    Raises
    ------
    FormatError
        Malformed or inconsistent inputs.
    ParamsError
        Unknown metric, kappa or protocol.

    Example
    -------
    >>> s = score("examples/preds.json", "examples/gt.json")  # doctest: +SKIP
    >>> s.metrics["gps_perpart"]["AP"]  # doctest: +SKIP
    """
    from .evaluation import evaluate_similarities, prepare
    from .evaluation.inputs import read_inputs
    from .evaluation.points import dense_point_errors
    from .evaluation.run import points_block
    from .formats.consistency import check_images

    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    bad = [m for m in wanted if m not in METRICS]
    if bad or not wanted:
        raise ParamsError(f"unknown metric(s) {bad}; choose from {list(METRICS)}")
    if "all" in wanted:
        wanted = ["gps", "gpsm", "iou", "points"]
    from .formats.cse import is_cse_source

    if is_cse_source(preds):
        from .cse.run import cse_bank, score_cse

        if oracle is not None:
            raise ParamsError("the oracle modes are defined for IUV predictions, not CSE")

        bank = cse_bank(
            meshes=meshes, registry=mesh_registry, vertex_embeddings=vertex_embeddings,
            checkpoint=checkpoint, mesh_basis=mesh_basis, geodists=geodists,
        )  # fmt: skip
        return score_cse(
            preds, gt, bank=bank, metrics=wanted, kappa=kappa, min_iou=min_iou,
            max_dets=max_dets, storage=storage, storage_shape=storage_shape,
            allow_unknown_images=allow_unknown_images, progress=progress,
        )  # fmt: skip
    if oracle is not None and oracle not in ORACLES:
        raise ParamsError(f"unknown oracle {oracle!r}; choose from {list(ORACLES)}")
    base = EvalParams(kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets)  # type: ignore[arg-type]
    tpl = load_template(template) if isinstance(template, str) else template
    p, g = read_inputs(preds, gt, template=tpl, protocol=protocol, workers=workers)
    chartless = next((a for a in g.annotations if a.has_dense and a.dp_I is None), None)
    if chartless is not None:
        raise FormatError(
            f"{g.source}: annotation {chartless.index} (id={chartless.id}) has CSE points "
            "only (dp_vertex, no dp_I/dp_U/dp_V); IUV predictions need chart ground truth, "
            "CSE predictions are scored against this one"
        )
    p, n_unknown = check_images(p, g, allow_unknown_images)
    counts = {"predictions left out (image not in the ground truth)": n_unknown}
    counts = counts if n_unknown else {}
    if solver is None:
        from .geodesic import GeodesicSolver

        solver = GeodesicSolver(tpl)
    if p.kind == "dense" and oracle is not None:
        py = "; score image-level dense maps with oracle=None"
        exc = ParamsError(
            f"{p.source}: the oracle modes need instance predictions (detection boxes){py}"
        )
        raise with_hint(exc, py, "; score image-level dense maps without --oracle", "--oracle")
    if p.kind == "dense":
        ap = [m for m in wanted if m != "points"]
        if ap:
            py = "; use metrics='points'"
            exc = ParamsError(
                f"{p.source}: image-level dense maps have no instances, so {ap} cannot be "
                f"computed{py}"
            )
            raise with_hint(exc, py, "; use --metric points", "--metric")
        dist, part = dense_point_errors(g, p, tpl, solver)
        summary = {"metrics": {}, "stats": {}, "official_summary": {}, "per_part": []}
        if "points" in wanted:
            summary["metrics"]["points"], summary["per_part"] = points_block(dist, part)
    else:
        sims = prepare(
            p,
            g,
            tpl,
            solver,
            protocol=protocol,
            with_masks="gpsm" in wanted or "iou" in wanted,
            max_dets=max_dets,
            workers=workers,
            progress=progress,
            oracle=oracle,
            client=client,
        )
        summary = evaluate_similarities(
            sims, g, wanted, kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets
        )
    out = make_summary(tpl, p, g, summary, protocol=base.protocol, warnings=counts)
    return dataclasses.replace(out, oracle=oracle) if oracle else out
