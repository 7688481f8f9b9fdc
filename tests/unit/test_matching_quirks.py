"""Matching and accumulation quirks of the official code, on cases built by hand.

- Detections are sorted by score with a *stable* sort (ties keep file order) before the
  top-``maxDets`` cut, per image.
- Accumulation concatenates images in id order and sorts by score with a stable sort, so
  among equal scores the detection of the lower image id comes first.
- The box fallback copies the ignore flag of an ignored GT with box IoU >= 0.8 to the
  detection at *every* threshold, using the state of the last threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from dpeval.evaluation.accumulate import accumulate
from dpeval.evaluation.match import Matches, match_image
from dpeval.evaluation.prepare import top_detections
from dpeval.formats.model import Detection, Predictions
from dpeval.params import EvalParams


def _dets(scores, image_id=1):
    return tuple(
        Detection(image_id, 1, np.array([0.0, 0.0, 10.0, 10.0]), s, (3, 10, 10), i)
        for i, s in enumerate(scores)
    )


def test_top_k_cut_keeps_file_order_among_equal_scores():
    scores = [0.5] * 22 + [0.9]
    tops = top_detections(Predictions("instances", detections=_dets(scores)), 20)
    assert tops[(1, 1)].tolist() == [22, *range(19)]  # 0.9 first, then file order


def _one(sim, score, gt_area=5000.0):
    sim = np.asarray(sim, float).reshape(1, -1)
    n_g = sim.shape[1]
    return match_image(
        sim,
        None,
        np.zeros(n_g, bool),
        np.zeros(n_g, bool),
        np.full(n_g, gt_area),
        np.array([5000.0]),
        np.array([score]),
        (0.0, 1e10),
        EvalParams().iou_thrs,
    )


def test_accumulate_breaks_score_ties_by_image_order():
    """Image 1: a false positive at score 0.5 (its GT is missed); image 2: a true positive
    at 0.5. npig = 2. Stable order puts image 1's FP first: precision 1/2 up to recall
    1/2; if the tie went the other way it would be 1."""
    params = EvalParams(area_ranges=EvalParams().area_ranges[:1])
    fp, tp = _one([0.0], 0.5), _one([0.99], 0.5)
    assert not fp.dt_matched.any() and not fp.dt_ignore.any() and tp.dt_matched.all()
    ev = accumulate(Matches({(1, 1, 0): fp, (2, 1, 0): tp}, (1, 2), (1,)), params)
    assert ev.recall[:, 0, 0, 0] == pytest.approx(0.5)
    np.testing.assert_allclose(ev.precision[:, :51, 0, 0, 0], 0.5, rtol=1e-12)
    np.testing.assert_array_equal(ev.precision[:, 51:, 0, 0, 0], 0.0)
    swapped = accumulate(Matches({(1, 1, 0): tp, (2, 1, 0): fp}, (1, 2), (1,)), params)
    np.testing.assert_allclose(swapped.precision[:, :51, 0, 0, 0], 1.0, rtol=1e-12)


def test_box_fallback_ignores_at_every_threshold_from_the_last_state():
    """Matched to the regular GT at 0.50-0.80 (similarity 0.8), unmatched at 0.95; box IoU
    0.85 with an ignored GT: the detection becomes ignored at every threshold, even where
    it was a true positive, and is recorded as matched at the last one."""
    thr = EvalParams().iou_thrs
    m = match_image(
        np.array([[0.8, 0.0]]),
        np.array([[0.5, 0.85]]),
        np.array([False, True]),
        np.zeros(2, bool),
        np.array([5000.0, 5000.0]),
        np.array([5000.0]),
        np.array([0.9]),
        (0.0, 1e10),
        thr,
    )
    assert m.dt_matched[: np.searchsorted(thr, 0.8 + 1e-9), 0].all()
    assert m.dt_ignore[:, 0].all()
    assert m.dt_matched[-1, 0] and m.dt_match_gt[-1, 0] == 1
