"""Evaluation parameters: every threshold and constant of the DensePose protocol.

One frozen :class:`EvalParams` holds what the official ``Params`` object holds for the
``uv``/``densepose`` iou type; the constants are named here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import ParamsError
from .template import COARSE_PART

__all__ = [
    "AP_AR_NAMES",
    "AREA_RANGES",
    "AUC10_RADIUS",
    "AUC30_RADIUS",
    "AUC_RADII",
    "BOX_FALLBACK_IOU",
    "IGNORE_REGION_BOX_THR",
    "IGNORE_REGION_UV_THR",
    "INSIGHT_RESAMPLES",
    "IOU_THR_STEP",
    "KAPPA_PAPER",
    "KAPPA_PER_PART",
    "LEADERBOARD_RESAMPLES",
    "MAX_DETS",
    "MAX_IOU_THR",
    "MEAN_DISTANCES",
    "MIN_IOU",
    "N_REC_THRS",
    "ORACLES",
    "PROTOCOLS",
    "RCP_GRID",
    "THR_LOOKUP_TOL",
    "EvalParams",
    "Kappa",
    "Metric",
    "Protocol",
]

Metric = Literal["gps", "gpsm", "iou"]
Kappa = Literal["paper", "per-part"]
Protocol = Literal["challenge2019", "detectron2"]
PROTOCOLS: tuple[str, ...] = ("challenge2019", "detectron2")

KAPPA_PAPER = 0.255
"""GPS normalisation kappa of the CVPR 2018 paper (metres): 0.3 m error -> GPS 0.5."""

MEAN_DISTANCES: tuple[float, ...] = (0.0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150)
"""Per coarse part kappa (metres) of the 2018/2019 challenges and detectron2
(index = coarse part: torso, hands, feet, upper legs, lower legs, upper arms, lower arms,
head)."""

KAPPA_PER_PART: tuple[float, ...] = tuple(MEAN_DISTANCES[c] for c in COARSE_PART)
"""Per chart id (0..24) kappa: ``MEAN_DISTANCES[COARSE_PART[I]]``."""

AREA_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", 0.0, 1e10),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e10),
)
"""Area ranges of the DensePose evaluation (no "small"); bounds are inclusive."""

MIN_IOU = 0.5
"""Default lowest similarity threshold (detectron2's ``MIN_IOU_THRESHOLD``; 0.2 gives APex)."""

MAX_IOU_THR = 0.95
"""Highest similarity threshold."""

IOU_THR_STEP = 0.05
"""Step of the similarity thresholds ``min_iou:0.05:0.95``."""

N_REC_THRS = 101
"""Recall thresholds 0:0.01:1 of the interpolated precision (pycocotools)."""

MAX_DETS = 20
"""Detections kept per image (top by score), as in the official DensePose evaluation."""

THR_LOOKUP_TOL = 0.001
"""Tolerance with which a summary line finds its threshold (pycocotools' AP lookup)."""

AP_AR_NAMES: tuple[str, ...] = (
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
"""Names of the ten detectron2-style AP/AR numbers (fractions, not percentages), in print
order."""

AUC10_RADIUS = 0.10
"""Upper limit (metres) of the AUC10 pointwise metric."""

AUC30_RADIUS = 0.30
"""Upper limit (metres) of the AUC30 pointwise metric."""

AUC_RADII: tuple[tuple[str, float], ...] = (("AUC10", AUC10_RADIUS), ("AUC30", AUC30_RADIUS))
"""(name, radius in metres) of each pointwise AUC."""

RCP_GRID = np.round(np.arange(301) * 0.001, 6)
"""Thresholds (metres) at which the RCP curve is reported: 0 to 0.30 m by 1 mm."""
RCP_GRID.flags.writeable = False

INSIGHT_RESAMPLES = 1000
"""Bootstrap resamples of ``dpeval report`` / ``compare`` (95% intervals whose end points
move by well under a tenth of their width between seeds)."""

LEADERBOARD_RESAMPLES = 200
"""Bootstrap resamples per leaderboard entry: fewer than :data:`INSIGHT_RESAMPLES` on
purpose, since every submission is scored on the server while its team waits."""

BOX_FALLBACK_IOU = 0.8
"""Box IoU above which an unmatched detection inherits the ignore flag of a GT (uv only)."""

ORACLES: dict[str, str] = {
    "gt-parts": "ground-truth part I, predicted U, V (official flag UB_geo_igt)",
    "gt-parts-uv0": "ground-truth part I, U = V = 0 (official flag UB_geo_igt_uv0)",
    "uv0": "predicted part I, U = V = 0 (official flag UB_geo_uv0)",
    "gt-iuv": "ground-truth I, U and V (official flag UB_geo_iuvgt)",
}
"""The official 2019 evaluator's upper-bound ("what if") modes for GPS: at every GT point
that falls inside a detection's box, the named quantities replace the prediction's
before the closest vertex is found (points outside the box still have no vertex; masks
are untouched)."""

IGNORE_REGION_BOX_THR = 0.7
"""A GT (or a 2019 detection) whose integer box has at least this share of its area inside
the image's ignore regions is dropped (PoseTrack ``ignoreThrBB``)."""

IGNORE_REGION_UV_THR = 0.9
"""A detectron2 detection whose foreground has at least this share inside the ignore
regions is dropped (``ignoreThrUV``)."""


def _thresholds(lo: float) -> np.ndarray:
    n = int(np.round((MAX_IOU_THR - lo) / IOU_THR_STEP)) + 1
    return np.linspace(lo, MAX_IOU_THR, n)


@dataclass(frozen=True)
class EvalParams:
    """Parameters of one DensePose evaluation.

    Parameters
    ----------
    metric : {"gps", "gpsm", "iou"}
        Similarity used for matching: GPS, sqrt(GPS * mask IoU), or mask IoU.
    kappa : {"per-part", "paper"}
        GPS normalisation: per coarse part (2018/2019 challenges, detectron2; default)
        or 0.255 for every point (the paper, DensePose before July 2018).
    protocol : {"challenge2019", "detectron2"}
        Where the two official codes differ: GT masks for GPSm/IoU (bilinear on labels
        with half-pixel centres vs binary with corner-aligned zoom) and the box bound
        for points (float vs int width/height).
    min_iou : float
        Lowest threshold; thresholds are ``min_iou:0.05:0.95`` (detectron2's
        ``MIN_IOU_THRESHOLD``; 0.5 by default, 0.2 gives "APex").
    max_dets : int
        Detections kept per image (top by score).
    """

    metric: Metric = "gps"
    kappa: Kappa = "per-part"
    protocol: Protocol = "challenge2019"
    min_iou: float = MIN_IOU
    max_dets: int = MAX_DETS
    area_ranges: tuple[tuple[str, float, float], ...] = AREA_RANGES
    rec_thrs: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, N_REC_THRS))

    def __post_init__(self) -> None:
        if self.metric not in ("gps", "gpsm", "iou"):
            raise ParamsError(f"metric must be 'gps', 'gpsm' or 'iou', got {self.metric!r}")
        if self.kappa not in ("paper", "per-part"):
            raise ParamsError(f"kappa must be 'paper' or 'per-part', got {self.kappa!r}")
        if self.protocol not in PROTOCOLS:
            raise ParamsError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not (0.0 < self.min_iou <= MAX_IOU_THR):
            raise ParamsError(f"min_iou must lie in (0, {MAX_IOU_THR}], got {self.min_iou}")
        if int(self.max_dets) < 1:
            raise ParamsError(f"max_dets must be >= 1, got {self.max_dets}")

    @property
    def iou_thrs(self) -> np.ndarray:
        """(T,) float64 similarity thresholds, ``min_iou:0.05:0.95``."""
        return _thresholds(self.min_iou)

    def kappa_of_part(self) -> np.ndarray:
        """(25,) float64 kappa per chart id 0..24 for this setting."""
        if self.kappa == "paper":
            return np.full(25, KAPPA_PAPER)
        return np.asarray(KAPPA_PER_PART, dtype=np.float64)

    @property
    def label(self) -> str:
        """Metric version label printed with every number, e.g. ``gps/per-part``."""
        if self.metric == "iou":
            return f"iou/{self.protocol}"
        if self.metric == "gpsm":
            return f"gpsm/{self.kappa}/{self.protocol}"
        return f"gps/{self.kappa}"
