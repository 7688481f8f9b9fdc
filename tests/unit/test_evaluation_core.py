"""The pure evaluation core: summarize's slices, accumulate's category axis, the
``decode`` switch of prepare, and the constants every caller shares.

The reference numbers are written by hand from pycocotools' ``summarize`` rules (which
threshold, which area, -1 entries left out); the facade-equals-functions check guards
the wiring of :class:`DensePoseEval`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from _cases import EuclideanSolver, make_case, records

from dpeval.errors import ParamsError
from dpeval.evaluation import (
    Accumulated,
    DensePoseEval,
    Matches,
    accumulate,
    match,
    match_image,
    prepare,
    summarize,
)
from dpeval.evaluation.summarize import mean_value, per_category_ap
from dpeval.params import AP_AR_NAMES, INSIGHT_RESAMPLES, LEADERBOARD_RESAMPLES, EvalParams

PARAMS = EvalParams()  # thresholds 0.50:0.05:0.95 (T = 10), areas all/medium/large


def _graded(params: EvalParams = PARAMS, n_cats: int = 1) -> Accumulated:
    """precision[t, :, k, a] = (t + 1) / 64 + a / 4 (k = 0); recall = that + 1/128.
    Dyadic values, so every mean is exact. Categories k >= 1 are all -1 (no GT)."""
    n_t, n_r, n_a = len(params.iou_thrs), len(params.rec_thrs), len(params.area_ranges)
    prec = -np.ones((n_t, n_r, n_cats, n_a, 1))
    rec = -np.ones((n_t, n_cats, n_a, 1))
    for t in range(n_t):
        for a in range(n_a):
            prec[t, :, 0, a, 0] = (t + 1) / 64 + a / 4
            rec[t, 0, a, 0] = (t + 1) / 64 + a / 4 + 1 / 128
    return Accumulated(prec, rec, np.zeros_like(prec))


def test_summarize_reads_the_right_threshold_and_area():
    st = summarize(_graded(), PARAMS)
    mean_t = np.mean(np.arange(1, 11)) / 64  # mean over the 10 thresholds, area "all"
    expected = {
        "AP": mean_t,
        "AP50": 1 / 64,
        "AP75": 6 / 64,  # 0.75 is the 6th threshold
        "APm": mean_t + 1 / 4,
        "APl": mean_t + 2 / 4,
        "AR": mean_t + 1 / 128,
        "AR50": 1 / 64 + 1 / 128,
        "AR75": 6 / 64 + 1 / 128,
        "ARm": mean_t + 1 / 4 + 1 / 128,
        "ARl": mean_t + 2 / 4 + 1 / 128,
    }
    assert list(st.named) == list(AP_AR_NAMES)
    assert st.named == expected
    # the official 18: AP, AP at each of the 10 thresholds, APm, APl, AR, AR50, AR75, ARm, ARl
    official = [mean_t, *[(t + 1) / 64 for t in range(10)], mean_t + 1 / 4, mean_t + 2 / 4]
    official += [expected[k] for k in ("AR", "AR50", "AR75", "ARm", "ARl")]
    np.testing.assert_array_equal(st.values, official)
    assert len(st.lines) == 18
    assert st.lines[0] == (
        " Average Precision  (AP) @[ OGPS=0.50:0.95 | area=   all | maxDets= 20 ] = 0.086"
    )
    assert st.lines[13].startswith(" Average Recall     (AR) @[ OGPS=0.50:0.95 | area=   all")


def test_summarize_apex_thresholds_and_empty_categories():
    p = EvalParams(min_iou=0.2)  # 0.20:0.05:0.95, T = 16
    st = summarize(_graded(p, n_cats=3), p)  # categories 2 and 3: -1 everywhere
    assert st.named["AP20"] == 1 / 64
    assert st.named["AP30"] == 3 / 64
    assert st.named["AP40"] == 5 / 64
    assert st.named["AP50"] == 7 / 64
    assert "AP20" not in summarize(_graded(), PARAMS).named
    none = Accumulated(-np.ones((10, 101, 1, 3, 1)), -np.ones((10, 1, 3, 1)), np.zeros(1))
    assert set(summarize(none, PARAMS).named.values()) == {-1.0}


def _one_image(sim: float, score: float):
    return match_image(
        np.array([[sim]]), None, np.zeros(1, bool), np.zeros(1, bool), np.full(1, 5000.0),
        np.full(1, 5000.0), np.array([score]), (0.0, 1e10), PARAMS.iou_thrs,
    )  # fmt: skip


def test_accumulate_follows_cat_ids_and_per_category_ap():
    p = EvalParams(area_ranges=PARAMS.area_ranges[:1])
    hit, miss = _one_image(0.99, 0.9), _one_image(0.0, 0.8)
    images = {(1, 1, 0): hit, (2, 1, 0): miss, (1, 7, 0): hit}
    one = accumulate(Matches(images, (1, 2), (1, 7)), p)
    assert one.precision.shape == (10, 101, 2, 1, 1)
    # category 1: 1 TP then 1 FP over 2 GT: precision 1 up to recall 1/2, then nothing
    # (pycocotools divides by tp + fp + eps, hence 1 - 2e-16)
    np.testing.assert_allclose(one.precision[:, :51, 0, 0, 0], 1.0, rtol=1e-12)
    np.testing.assert_array_equal(one.precision[:, 51:, 0, 0, 0], 0.0)
    np.testing.assert_allclose(one.precision[:, :, 1, 0, 0], 1.0, rtol=1e-12)  # category 7
    assert per_category_ap(one, (1, 7)) == pytest.approx({1: 51 / 101, 7: 1.0}, rel=1e-12)
    # a category without any matched image keeps -1 and leaves the mean alone
    three = accumulate(Matches(images, (1, 2), (1, 3, 7)), p)
    assert (three.precision[:, :, 1] == -1).all() and (three.recall[:, 1] == -1).all()
    assert per_category_ap(three, (1, 3, 7))[3] == -1
    assert mean_value(three, p, ap=True) == mean_value(one, p, ap=True) > 0.5


@pytest.fixture(scope="module")
def case(open_template):
    gt_dict, dets = make_case(seed=4, n_images=3, points=20)
    img = gt_dict["images"][0]["id"]
    far = (img, [600.0, 440.0, 20.0, 20.0], 0.5, np.ones((3, 20, 20), np.uint8))
    gt, preds = records(gt_dict, [*dets, far])
    return gt, preds, EuclideanSolver(open_template)


def test_decode_touching_skips_only_untouched_detections(case, open_template):
    gt, preds, solver = case
    loaded: list[int] = []

    def counting(d):
        def load():
            loaded.append(d.index)
            return d._iuv

        return dataclasses.replace(d, _iuv=None, _loader=load)

    counted = dataclasses.replace(preds, detections=tuple(counting(d) for d in preds.detections))
    far = len(preds.detections) - 1
    touching = prepare(counted, gt, open_template, solver, workers=1)
    assert far not in loaded and len(loaded) == far
    loaded.clear()
    every = prepare(counted, gt, open_template, solver, workers=1, decode="all")
    assert sorted(loaded) == list(range(far + 1))
    for a, b in zip(touching.images, every.images, strict=True):
        np.testing.assert_array_equal(a.gps_per_part, b.gps_per_part)
        np.testing.assert_array_equal(a.mask_iou, b.mask_iou)
    with pytest.raises(ParamsError, match="decode must be one of"):
        prepare(preds, gt, open_template, solver, decode="some")  # type: ignore[arg-type]


def test_facade_is_the_functions(case, open_template):
    gt, preds, solver = case
    sims = prepare(preds, gt, open_template, solver, workers=1)
    for metric in ("gps", "gpsm", "iou"):
        p = EvalParams(metric=metric)  # type: ignore[arg-type]
        st = summarize(accumulate(match(sims, gt, p), p), p)
        ev = DensePoseEval(gt, preds, template=open_template, params=p, solver=solver)
        assert ev.run() == st.named
        np.testing.assert_array_equal(ev.stats, st.values)
        assert ev.summarize() == list(st.lines)
        assert ev.similarities is not None and ev.matches is not None


def test_resample_counts_are_the_named_constants():
    from dpeval.insight.bootstrap import DEFAULT_RESAMPLES as insight
    from dpeval.leaderboard.submit import DEFAULT_RESAMPLES as board

    assert (insight, board) == (INSIGHT_RESAMPLES, LEADERBOARD_RESAMPLES) == (1000, 200)


def test_no_placeholder_arguments_or_test_switches_in_the_package():
    """The redesign removed stand-ins (an empty Predictions, ``solver=False``, a fake
    template), module switches for tests and imports of the API's private helpers."""
    root = Path(__file__).resolve().parents[2] / "dpeval"
    banned = re.compile(
        r"solver=False|_NoTemplate|_NO_TEMPLATE|_SKIP_UNTOUCHED|Predictions\(\"instances\"\)"
        r"|from \.+api import _"
    )
    hits = [
        f"{f.relative_to(root)}:{n}"
        for f in sorted(root.rglob("*.py"))
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if banned.search(line)
    ]
    assert hits == []
