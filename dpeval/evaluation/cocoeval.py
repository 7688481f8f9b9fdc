"""COCO-style AP/AR over GPS, GPSm or mask IoU: a pycocotools-shaped evaluator.

In: ground truth, instance predictions, a template (and its geodesic solver), and
:class:`~dpeval.params.EvalParams`. Out: ``eval["precision"]`` (T, R, K, A, M),
``eval["recall"]`` (T, K, A, M), ``eval["scores"]`` and ``stats``.

Stages as users know them from pycocotools: :meth:`DensePoseEval.evaluate` (similarities,
then greedy matching per image, :mod:`dpeval.evaluation.match`), :meth:`~DensePoseEval.accumulate`
(precision/recall exactly as pycocotools) and :meth:`~DensePoseEval.summarize` (the
official 18-line layout; :meth:`~DensePoseEval.stats_as_dict` names the numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import StateError
from ..formats.model import GroundTruth, Predictions
from .match import ImageMatch, match_image
from ..params import EvalParams
from ..template import BodyTemplate, load_template
from .prepare import ImageSims, Similarities, compute_similarities

__all__ = ["STAT_NAMES", "DensePoseEval", "accumulate", "similarity_matrix"]

log = logging.getLogger(__name__)

STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APm",
    "APl",
    "AR",
    "AR50",
    "AR75",
    "ARm",
    "ARl",
)
"""Names of the ten detectron2-style numbers (fractions, not percentages)."""


def similarity_matrix(s: ImageSims, params: EvalParams) -> np.ndarray:
    """(D, G) similarity of the mode: GPS, sqrt(GPS * IoU) or IoU."""
    gps = s.gps_paper if params.kappa == "paper" else s.gps_per_part
    if params.metric == "gps":
        return gps
    if s.mask_iou is None:
        raise StateError("mask IoUs were not computed; build the similarities with masks")
    if params.metric == "iou":
        return s.mask_iou
    return np.sqrt(gps * s.mask_iou)


def accumulate(
    matches: dict[tuple[int, int, int], ImageMatch],
    image_ids: list[int],
    cat_ids: list[int],
    params: EvalParams,
) -> dict[str, Any]:
    """pycocotools ``accumulate`` for one maxDets setting.

    Parameters
    ----------
    matches : dict
        (image id, category id, area index) -> ImageMatch.
    image_ids, cat_ids : list of int
        Sorted; detections are concatenated in this image order before the stable
        score sort, as pycocotools does.

    Returns
    -------
    dict
        ``precision`` (T, R, K, A, 1), ``recall`` (T, K, A, 1), ``scores`` (T, R, K, A, 1);
        -1 where a setting has no non-ignored GT.
    """
    thr = params.iou_thrs
    rec = params.rec_thrs
    n_t, n_r, n_k, n_a = len(thr), len(rec), len(cat_ids), len(params.area_ranges)
    precision = -np.ones((n_t, n_r, n_k, n_a, 1))
    recall = -np.ones((n_t, n_k, n_a, 1))
    scores = -np.ones((n_t, n_r, n_k, n_a, 1))
    for k, cat in enumerate(cat_ids):
        for a in range(n_a):
            ms = [matches[(i, cat, a)] for i in image_ids if (i, cat, a) in matches]
            if not ms:
                continue
            dt_scores = np.concatenate([m.dt_scores for m in ms])
            order = np.argsort(-dt_scores, kind="mergesort")
            dt_scores = dt_scores[order]
            dtm = np.concatenate([m.dt_matched for m in ms], axis=1)[:, order]
            dtig = np.concatenate([m.dt_ignore for m in ms], axis=1)[:, order]
            npig = int(sum(int((~m.gt_ignore).sum()) for m in ms))
            if npig == 0:
                continue
            tps = dtm & ~dtig
            fps = ~dtm & ~dtig
            tp_sum = np.cumsum(tps, axis=1, dtype=np.float64)
            fp_sum = np.cumsum(fps, axis=1, dtype=np.float64)
            for t in range(n_t):
                tp, fp = tp_sum[t], fp_sum[t]
                nd = len(tp)
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                recall[t, k, a, 0] = rc[-1] if nd else 0
                pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                q = np.zeros(n_r)
                ss = np.zeros(n_r)
                inds = np.searchsorted(rc, rec, side="left")
                valid = inds < nd
                q[valid] = pr[inds[valid]]
                ss[valid] = dt_scores[inds[valid]]
                precision[t, :, k, a, 0] = q
                scores[t, :, k, a, 0] = ss
    return {"precision": precision, "recall": recall, "scores": scores}


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
        self.matches: dict[tuple[int, int, int], ImageMatch] | None = None
        self.eval: dict[str, Any] = {}
        self.stats: np.ndarray | None = None

    @property
    def solver(self) -> Any:
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
        if self.similarities is None or (
            p.metric != "gps"
            and self.similarities.images
            and self.similarities.images[0].mask_iou is None
        ):
            self.similarities = compute_similarities(
                self.gt,
                self.preds,
                self.template,
                self.solver,
                protocol=p.protocol,
                with_masks=p.metric != "gps",
                max_dets=p.max_dets,
                workers=self.workers,
                progress=self.progress,
            )
        gts = self.gt.annotations
        thr = p.iou_thrs
        matches: dict[tuple[int, int, int], ImageMatch] = {}
        for s in self.similarities.images:
            sim = similarity_matrix(s, p)
            no_dense = np.array([not gts[g].has_dense for g in s.gt_index], dtype=bool)
            crowd = np.array([gts[g].iscrowd for g in s.gt_index], dtype=bool)
            area = np.array([gts[g].area for g in s.gt_index], dtype=np.float64)
            for a, (_, lo, hi) in enumerate(p.area_ranges):
                matches[(s.image_id, s.category_id, a)] = match_image(
                    sim,
                    s.box_iou,
                    no_dense,
                    crowd,
                    area,
                    s.det_area,
                    s.det_scores,
                    (lo, hi),
                    thr,
                )
        self.matches = matches

    def accumulate(self) -> None:
        """Precision and recall per threshold, category and area range."""
        if self.matches is None:
            raise StateError("accumulate() needs evaluate() first")
        self.eval = accumulate(self.matches, self.image_ids, self.cat_ids, self.params)
        self.eval["params"] = self.params

    def _mean(self, ap: bool, thr: float | None = None, area: str = "all") -> float:
        p = self.params
        a = [name for name, _, _ in p.area_ranges].index(area)
        if ap:
            s = self.eval["precision"]
            if thr is not None:
                s = s[np.flatnonzero(np.abs(thr - p.iou_thrs) < 0.001)]
            s = s[:, :, :, a, 0]
        else:
            s = self.eval["recall"]
            if thr is not None:
                s = s[np.flatnonzero(np.abs(thr - p.iou_thrs) < 0.001)]
            s = s[:, :, a, 0]
        valid = s[s > -1]
        return float(valid.mean()) if valid.size else -1.0

    def summarize(self, print_function: Callable[[str], None] | None = None) -> list[str]:
        """The official 18 numbers (``stats``) and their lines.

        AP[.50:.95], AP at 0.50, 0.55, ..., 0.95, AP medium, AP large, AR[.50:.95],
        AR@0.50, AR@0.75, AR medium, AR large (maxDets 20). Thresholds are looked up with
        a 0.001 tolerance for AP and AR alike (the original AR lookup uses exact float
        equality, which gives the same result for 0.50 and 0.75).

        Returns
        -------
        list of str
            The lines; also passed to ``print_function`` when given.
        """
        if not self.eval:
            raise StateError("summarize() needs accumulate() first")
        p = self.params
        lo = f"{p.iou_thrs[0]:0.2f}:{p.iou_thrs[-1]:0.2f}"
        rows: list[tuple[bool, float | None, str]] = [(True, None, "all")]
        rows += [(True, float(t), "all") for t in p.iou_thrs]
        rows += [
            (True, None, "medium"),
            (True, None, "large"),
            (False, None, "all"),
            (False, 0.5, "all"),
            (False, 0.75, "all"),
            (False, None, "medium"),
            (False, None, "large"),
        ]
        stats, lines = [], []
        for ap, thr, area in rows:
            v = self._mean(ap, thr, area)
            stats.append(v)
            title = "Average Precision  (AP)" if ap else "Average Recall     (AR)"
            thr_s = lo if thr is None else f"{thr:0.2f}"
            lines.append(
                f" {title} @[ OGPS={thr_s:<9} | area={area:>6s} | maxDets={p.max_dets:>3d} ]"
                f" = {v:0.3f}"
            )
        self.stats = np.array(stats)
        if print_function is not None:
            for line in lines:
                print_function(line)
        return lines

    def stats_as_dict(self) -> dict[str, float]:
        """The ten detectron2-style numbers as fractions: AP, AP50, AP75, APm, APl, AR,
        AR50, AR75, ARm, ARl (plus AP20/AP30/AP40 when ``min_iou`` allows them)."""
        if not self.eval:
            raise StateError("stats_as_dict() needs accumulate() first")
        p = self.params
        out = {"AP": self._mean(True)}
        for t in (0.2, 0.3, 0.4):
            if p.iou_thrs.min() <= t + 0.001:
                out[f"AP{int(t * 100)}"] = self._mean(True, t)
        out.update(
            {
                "AP50": self._mean(True, 0.5),
                "AP75": self._mean(True, 0.75),
                "APm": self._mean(True, area="medium"),
                "APl": self._mean(True, area="large"),
                "AR": self._mean(False),
                "AR50": self._mean(False, 0.5),
                "AR75": self._mean(False, 0.75),
                "ARm": self._mean(False, area="medium"),
                "ARl": self._mean(False, area="large"),
            }
        )
        return out

    def run(self) -> dict[str, float]:
        """evaluate(), accumulate(), then the named numbers."""
        self.evaluate()
        self.accumulate()
        self.summarize()
        return self.stats_as_dict()
