"""Stage 5: metrics. Similarities (GPS, masks) -> matching -> AP/AR; pointwise RCP/AUC."""

from __future__ import annotations

from .cocoeval import STAT_NAMES, DensePoseEval, accumulate, similarity_matrix
from .points import PointMetrics, auc, point_metrics, ratio_correct_points
from .run import evaluate_similarities
from .prepare import ImageSims, Similarities, compute_similarities
from .streaming import DensePoseMetric

__all__ = [
    "STAT_NAMES",
    "DensePoseEval",
    "DensePoseMetric",
    "ImageSims",
    "PointMetrics",
    "Similarities",
    "accumulate",
    "auc",
    "compute_similarities",
    "evaluate_similarities",
    "point_metrics",
    "ratio_correct_points",
    "similarity_matrix",
]
