"""Stage 4, the evaluation core: pure functions, and the two classes built on them.

prepare (similarities: GPS, masks, box IoUs; :mod:`.prepare`, :mod:`.images`) ->
match (:mod:`.match`, Numba kernel in :mod:`._kernels`, twin in :mod:`._reference`) ->
accumulate (:mod:`.accumulate`) -> summarize (:mod:`.summarize`); pointwise RCP/AUC
(:mod:`.points`). :class:`DensePoseEval` (pycocotools facade) and
:class:`DensePoseMetric` (streaming) call them; so do the API, insight and the
leaderboard. Imports template, geodesic (solvers are passed in), formats and params.
"""

from __future__ import annotations

from .accumulate import Accumulated, accumulate
from .boxes import box_iou
from .cocoeval import DensePoseEval
from .match import ImageMatch, Matches, match, match_image, similarity_matrix
from .points import PointMetrics, auc, point_metrics, ratio_correct_points
from .prepare import ImageSims, Similarities, prepare
from .run import ModeResult, evaluate_mode, evaluate_similarities
from .streaming import DensePoseMetric
from .summarize import Stats, summarize

__all__ = [
    "Accumulated",
    "DensePoseEval",
    "DensePoseMetric",
    "ImageMatch",
    "ImageSims",
    "Matches",
    "ModeResult",
    "PointMetrics",
    "Similarities",
    "Stats",
    "accumulate",
    "auc",
    "box_iou",
    "evaluate_mode",
    "evaluate_similarities",
    "match",
    "match_image",
    "point_metrics",
    "prepare",
    "ratio_correct_points",
    "similarity_matrix",
    "summarize",
]
