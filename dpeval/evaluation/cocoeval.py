"""COCO-style AP/AR over GPS, GPSm or mask IoU: a pycocotools-shaped facade.

In: ground truth, instance predictions, a template (and its geodesic solver), and
:class:`~dpeval.params.EvalParams`. Out: ``eval["precision"]`` (T, R, K, A, M),
``eval["recall"]`` (T, K, A, M), ``eval["scores"]`` and ``stats``.

The stages as users know them from pycocotools, each a thin call into the pure
evaluation core: :meth:`DensePoseEval.evaluate` (:func:`~dpeval.evaluation.prepare.prepare`
once, then :func:`~dpeval.evaluation.match.match`), :meth:`~DensePoseEval.accumulate`
(:func:`~dpeval.evaluation.accumulate.accumulate`) and :meth:`~DensePoseEval.summarize`
(:func:`~dpeval.evaluation.summarize.summarize`: the official 18-line layout;
:meth:`~DensePoseEval.stats_as_dict` names the numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import StateError
from ..formats.model import GroundTruth, Predictions
from ..params import EvalParams
from ..template import BodyTemplate, load_template
from .accumulate import Accumulated, accumulate
from .match import Matches, match
from .prepare import Similarities, prepare
from .summarize import Stats, summarize

__all__ = ["DensePoseEval"]

log = logging.getLogger(__name__)


class DensePoseEval:
    """pycocotools-shaped DensePose evaluator.

    The argument order is pycocotools' ``COCOeval(cocoGt, cocoDt)``: ground truth first.
    (:func:`dpeval.score` takes ``(preds, gt)``, like the command line.)

    Parameters
    ----------
    gt : path, dict or GroundTruth
        DensePose-COCO ground truth (a file is read with
        :func:`dpeval.formats.load_ground_truth`).
    preds : path, list of dicts or Predictions
        Instance predictions in any supported format (read with
        :func:`dpeval.formats.load_predictions` against the GT's images).
    template : BodyTemplate or str, default "open"
    params : EvalParams, optional
    solver : GeodesicSolver, optional
        Defaults to ``GeodesicSolver(template)`` (legacy table when the template has one).
    similarities : Similarities, optional
        Reuse similarities computed for another mode (must include masks for GPSm/IoU).
    workers : int
        Threads decoding IUV maps.
    progress : callable, optional

    Example
    -------
    >>> ev = DensePoseEval(gt, preds, params=EvalParams(metric="gpsm"))  # doctest: +SKIP
    >>> ev.evaluate(); ev.accumulate(); ev.summarize()  # doctest: +SKIP
    """

    def __init__(
        self,
        gt: GroundTruth | Any,
        preds: Predictions | Any,
        *,
        template: BodyTemplate | str = "open",
        params: EvalParams | None = None,
        solver: Any = None,
        similarities: Similarities | None = None,
        workers: int = 2,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from ..formats import load_ground_truth, load_predictions

        self.gt = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
        self.preds = (
            preds
            if isinstance(preds, Predictions)
            else load_predictions(preds, images=self.gt.images)
        )
        self.template = load_template(template) if isinstance(template, str) else template
        self.params = params or EvalParams()
        self._solver = solver
        self.similarities = similarities
        self.workers = workers
        self.progress = progress
        self.matches: Matches | None = None
        self.accumulated: Accumulated | None = None
        self.eval: dict[str, Any] = {}
        self.stats: np.ndarray | None = None

    @property
    def solver(self) -> Any:
        """The geodesic solver (built from the template on first use)."""
        if self._solver is None:
            from ..geodesic import GeodesicSolver

            self._solver = GeodesicSolver(self.template)
        return self._solver

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.gt.images)

    @property
    def cat_ids(self) -> list[int]:
        return sorted(self.gt.categories)

    def evaluate(self) -> None:
        """Compute similarities (once) and match every image for every area range."""
        p = self.params
        sims = self.similarities
        if sims is None or (p.metric != "gps" and sims.images and sims.images[0].mask_iou is None):
            self.similarities = prepare(
                self.preds,
                self.gt,
                self.template,
                self.solver,
                protocol=p.protocol,
                with_masks=p.metric != "gps",
                max_dets=p.max_dets,
                workers=self.workers,
                progress=self.progress,
            )
        self.matches = match(self.similarities, self.gt, p)

    def accumulate(self) -> None:
        """Precision and recall per threshold, category and area range."""
        if self.matches is None:
            raise StateError("accumulate() needs evaluate() first")
        self.accumulated = accumulate(self.matches, self.params)
        acc = self.accumulated
        self.eval = {
            "precision": acc.precision,
            "recall": acc.recall,
            "scores": acc.scores,
            "params": self.params,
        }

    def _summary(self, what: str) -> Stats:
        if self.accumulated is None:
            raise StateError(f"{what}() needs accumulate() first")
        return summarize(self.accumulated, self.params)

    def summarize(self, print_function: Callable[[str], None] | None = None) -> list[str]:
        """The official 18 numbers (``stats``) and their lines.

        AP[.50:.95], AP at 0.50, 0.55, ..., 0.95, AP medium, AP large, AR[.50:.95],
        AR@0.50, AR@0.75, AR medium, AR large (maxDets 20); see
        :func:`dpeval.evaluation.summarize.summarize`.

        Returns
        -------
        list of str
            The lines; also passed to ``print_function`` when given.
        """
        st = self._summary("summarize")
        self.stats = st.values
        if print_function is not None:
            for line in st.lines:
                print_function(line)
        return list(st.lines)

    def stats_as_dict(self) -> dict[str, float]:
        """The ten detectron2-style numbers as fractions: AP, AP50, AP75, APm, APl, AR,
        AR50, AR75, ARm, ARl (plus AP20/AP30/AP40 when ``min_iou`` allows them)."""
        return dict(self._summary("stats_as_dict").named)

    def run(self) -> dict[str, float]:
        """evaluate(), accumulate(), then the named numbers."""
        self.evaluate()
        self.accumulate()
        self.summarize()
        return self.stats_as_dict()
