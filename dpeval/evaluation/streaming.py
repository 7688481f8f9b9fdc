"""Evaluation core, streaming: ``update(preds, gt)`` per batch, ``compute()`` at the end.

Each update computes the batch's similarities (the costly part) and keeps only them;
``compute()`` matches and accumulates over everything seen. Images are independent and
accumulation orders detections by (image id, score), so the result does not depend on
how the data was split into batches or on the batch order, as long as each image comes
whole in one update (a repeated image id is an error).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import FormatError, StateError
from ..formats.model import GroundTruth, Predictions
from ..params import EvalParams
from ..template import BodyTemplate, load_template
from .prepare import Similarities, prepare
from .run import evaluate_similarities

__all__ = ["DensePoseMetric"]


class DensePoseMetric:
    """Accumulate DensePose metrics over batches.

    Parameters
    ----------
    template : BodyTemplate or str
    metrics : list of str
        Among ``gps``, ``gpsm``, ``iou``, ``points`` (default: all).
    kappa, protocol, min_iou, max_dets
        As :func:`dpeval.score`.
    solver : GeodesicSolver, optional

    Example
    -------
    >>> m = DensePoseMetric()  # doctest: +SKIP
    >>> for preds, gt in batches:  # doctest: +SKIP
    ...     m.update(preds, gt)
    >>> m.compute()["metrics"]["gps_perpart"]["AP"]  # doctest: +SKIP
    """

    def __init__(
        self,
        template: BodyTemplate | str = "open",
        metrics: list[str] | None = None,
        *,
        kappa: str = "per-part",
        protocol: str = "challenge2019",
        min_iou: float = 0.5,
        max_dets: int = 20,
        solver: Any = None,
        workers: int = 2,
    ) -> None:
        EvalParams(kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets)  # type: ignore[arg-type]
        self.template = load_template(template) if isinstance(template, str) else template
        self.metrics = list(metrics or ["gps", "gpsm", "iou", "points"])
        self.options = {
            "kappa": kappa,
            "protocol": protocol,
            "min_iou": min_iou,
            "max_dets": max_dets,
        }
        if solver is None:
            from ..geodesic import GeodesicSolver

            solver = GeodesicSolver(self.template)
        self.solver = solver
        self.workers = workers
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._images: dict[int, Any] = {}
        self._annotations: list[Any] = []
        self._sims: list[Similarities] = []
        self._offsets: list[int] = []

    def update(self, preds: Any, gt: Any) -> None:
        """Add one batch: predictions and the ground truth of the same images.

        Raises
        ------
        FormatError
            An image of this batch was already seen, or predictions refer to images
            that are not in this batch's ground truth.
        """
        from ..formats import load_ground_truth, load_predictions

        g = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
        p = preds if isinstance(preds, Predictions) else load_predictions(preds, images=g.images)
        seen = sorted(set(g.images) & set(self._images))
        if seen:
            raise FormatError(
                f"update(): image(s) {seen[:5]} were already given in an earlier batch; each "
                "image must come whole (all its GT and predictions) in one update"
            )
        outside = sorted({d.image_id for d in p.detections} - set(g.images))
        if outside:
            raise FormatError(
                f"update(): predictions on image(s) {outside[:5]} that are not in this "
                "batch's ground truth"
            )
        sims = prepare(
            p,
            g,
            self.template,
            self.solver,
            protocol=self.options["protocol"],
            with_masks="gpsm" in self.metrics or "iou" in self.metrics,
            max_dets=self.options["max_dets"],
            workers=self.workers,
        )
        self._offsets.append(len(self._annotations))
        self._images.update(g.images)
        self._annotations.extend(g.annotations)
        self._sims.append(sims)

    def compute(self) -> dict[str, Any]:
        """Metrics over all batches: ``metrics``, ``stats``, ``official_summary``, ``per_part``."""
        if not self._sims:
            raise StateError("compute() needs at least one update()")
        images = []
        pg, pp, pd = [], [], []
        for sims, off in zip(self._sims, self._offsets, strict=True):
            images += [replace(s, gt_index=s.gt_index + off) for s in sims.images]
            pg.append(sims.point_gt + off)
            pp.append(sims.point_part)
            pd.append(sims.point_dist)
        images.sort(key=lambda s: (s.image_id, s.category_id))
        merged = Similarities(
            images,
            np.concatenate(pg),
            np.concatenate(pp),
            np.concatenate(pd),
            self.options["protocol"],
        )
        gt = GroundTruth(images=dict(self._images), annotations=tuple(self._annotations))
        return evaluate_similarities(merged, gt, self.metrics, **self.options)
