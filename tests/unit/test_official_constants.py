"""The official constants, written down once from the protocol spec, not from params.py.

Source: the DensePose evaluators (spec ``densepose_protocol.md`` §3-§4): ``Mean_Distances``
and ``CoarseParts`` of ``densepose_cocoeval.py``, ``setUvParams`` (thresholds, recall
points, maxDets, area ranges), the paper's fixed kappa, the uv box fallback and the
PoseTrack ignore-region thresholds. The tables are typed here by hand, so a changed
constant in dpeval fails, and the behaviour checks below make sure the evaluation really
uses them (a constant that is right in ``params.py`` but bypassed would still fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from dpeval import params
from dpeval.evaluation import regions
from dpeval.evaluation.match import match_image
from dpeval.params import EvalParams
from dpeval.template import COARSE_PART

# --- spec §3: per coarse part kappa (metres) and the chart -> coarse part map -----------
OFFICIAL_MEAN_DISTANCES = [0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150]
OFFICIAL_COARSE_PARTS = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8]
OFFICIAL_KAPPA_BY_NAME = {
    "torso": 0.351,
    "hands": 0.107,
    "feet": 0.126,
    "upper legs": 0.237,
    "lower legs": 0.173,
    "upper arms": 0.142,
    "lower arms": 0.128,
    "head": 0.150,
}
# chart ids of each coarse part (spec §1.1 chart pairs)
CHARTS_BY_NAME = {
    "torso": (1, 2),
    "hands": (3, 4),
    "feet": (5, 6),
    "upper legs": (7, 8, 9, 10),
    "lower legs": (11, 12, 13, 14),
    "upper arms": (15, 16, 17, 18),
    "lower arms": (19, 20, 21, 22),
    "head": (23, 24),
}
OFFICIAL_KAPPA_PAPER = 0.255
# --- spec §4: Params for iouType uv/densepose -------------------------------------------
OFFICIAL_IOU_THRS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
OFFICIAL_REC_THRS = [r / 100 for r in range(101)]
OFFICIAL_MAX_DETS = 20
OFFICIAL_AREA_RANGES = [("all", 0.0, 1e10), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, 1e10)]
OFFICIAL_BOX_FALLBACK = 0.8
OFFICIAL_IGNORE_BOX = 0.7
OFFICIAL_IGNORE_UV = 0.9


def test_mean_distances_and_coarse_parts():
    assert list(params.MEAN_DISTANCES) == OFFICIAL_MEAN_DISTANCES
    assert list(COARSE_PART) == OFFICIAL_COARSE_PARTS
    assert len(params.KAPPA_PER_PART) == 25


@pytest.mark.parametrize("name", sorted(OFFICIAL_KAPPA_BY_NAME))
def test_kappa_per_chart_id(name):
    for chart in CHARTS_BY_NAME[name]:
        assert params.KAPPA_PER_PART[chart] == OFFICIAL_KAPPA_BY_NAME[name], chart
    ev = EvalParams()
    k = ev.kappa_of_part()
    assert all(k[c] == OFFICIAL_KAPPA_BY_NAME[name] for c in CHARTS_BY_NAME[name])


def test_paper_kappa():
    assert params.KAPPA_PAPER == OFFICIAL_KAPPA_PAPER
    k = EvalParams(kappa="paper").kappa_of_part()
    assert np.all(k == OFFICIAL_KAPPA_PAPER)
    # the paper's calibration: a 0.3 m error gives GPS 0.5 (0.5006)
    assert np.exp(-(0.3**2) / (2 * params.KAPPA_PAPER**2)) == pytest.approx(0.5006, abs=1e-4)


def test_default_params_are_the_official_ones():
    p = EvalParams()
    assert p.metric == "gps" and p.kappa == "per-part" and p.protocol == "challenge2019"
    np.testing.assert_allclose(p.iou_thrs, OFFICIAL_IOU_THRS, rtol=0, atol=1e-15)
    assert p.iou_thrs[0] == 0.5 and p.iou_thrs[5] == 0.75  # exact: AR@.5/.75 lookups
    np.testing.assert_allclose(p.rec_thrs, OFFICIAL_REC_THRS, rtol=0, atol=1e-15)
    assert p.max_dets == OFFICIAL_MAX_DETS
    assert [tuple(a) for a in p.area_ranges] == OFFICIAL_AREA_RANGES
    assert params.BOX_FALLBACK_IOU == OFFICIAL_BOX_FALLBACK
    assert params.IGNORE_REGION_BOX_THR == OFFICIAL_IGNORE_BOX
    assert params.IGNORE_REGION_UV_THR == OFFICIAL_IGNORE_UV


def test_apex_thresholds():
    """detectron2 MIN_IOU_THRESHOLD=0.2: linspace(0.2, 0.95, 16)."""
    np.testing.assert_allclose(
        EvalParams(min_iou=0.2).iou_thrs, [0.2 + 0.05 * i for i in range(16)], atol=1e-12
    )


# --- behaviour: the constants are the ones the evaluation uses --------------------------
def _match(sim, box, no_dense, area, dt_area, rng=(0.0, 1e10)):
    d, g = np.asarray(sim, float).shape
    return match_image(
        np.asarray(sim, float),
        np.asarray(box, float),
        np.asarray(no_dense, bool),
        np.zeros(g, bool),
        np.asarray(area, float),
        np.asarray(dt_area, float),
        np.linspace(1.0, 0.1, d),
        rng,
        np.asarray(OFFICIAL_IOU_THRS),
    )


@pytest.mark.parametrize(("box", "ignored"), [(0.8, True), (0.7999, False)])
def test_box_fallback_threshold_is_used(box, ignored):
    """A detection on an unannotated person (box IoU >= 0.8) is ignored, below it a FP."""
    m = _match([[0.0, 0.0]], [[0.0, box]], [False, True], [5000, 5000], [5000])
    assert bool(m.dt_ignore[:, 0].all()) is ignored
    assert not m.dt_matched[:-1, 0].any()


@pytest.mark.parametrize(
    ("area", "in_medium"), [(32.0**2 - 1, False), (32.0**2, True), (96.0**2, True)]
)
def test_area_range_bounds_are_used_inclusively(area, in_medium):
    m = _match([[0.9]], [[0.9]], [False], [area], [area], rng=OFFICIAL_AREA_RANGES[1][1:])
    assert bool(m.gt_ignore[0]) is not in_medium


@pytest.mark.parametrize(("inside", "kept"), [(0.7, False), (0.69, True)])
def test_ignore_region_box_threshold_is_used(inside, kept):
    region = np.zeros((10, 100), np.uint8)
    region[:, : int(inside * 100)] = 1
    assert regions.keep_box(np.array([0.0, 0.0, 100.0, 10.0]), region) is kept
