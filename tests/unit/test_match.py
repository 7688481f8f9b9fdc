"""DensePose matching rules on hand-built cases (spec §4, §8)."""

from __future__ import annotations

import numpy as np

from dpeval.evaluation.accumulate import accumulate
from dpeval.evaluation.boxes import box_iou
from dpeval.evaluation.match import Matches, match_image
from dpeval.params import EvalParams

THR = EvalParams().iou_thrs
ALL = (0.0, 1e10)


def run(
    sim, *, no_dense=None, crowd=None, gt_area=None, det_area=None, scores=None, box=None, rng=ALL
):
    sim = np.asarray(sim, dtype=float)
    d, g = sim.shape
    return match_image(
        sim,
        None if box is None else np.asarray(box, dtype=float),
        np.zeros(g, bool) if no_dense is None else np.asarray(no_dense),
        np.zeros(g, bool) if crowd is None else np.asarray(crowd),
        np.full(g, 5000.0) if gt_area is None else np.asarray(gt_area, dtype=float),
        np.full(d, 5000.0) if det_area is None else np.asarray(det_area, dtype=float),
        np.linspace(1, 0.5, d) if scores is None else np.asarray(scores, dtype=float),
        rng,
        THR,
    )


def test_greedy_in_score_order():
    # det 0 (higher score) takes GT 1 (0.9); det 1 can only take GT 0 (0.6)
    m = run([[0.7, 0.9], [0.6, 0.95]])
    assert m.dt_match_gt[0].tolist() == [1, 0]
    # at 0.75 det 1 finds no GT left above the threshold
    t75 = int(np.flatnonzero(np.isclose(THR, 0.75))[0])
    assert m.dt_match_gt[t75].tolist() == [1, -1]
    assert not m.dt_ignore.any()


def test_similarity_zero_never_matches_and_ties_go_to_later_gt():
    m = run([[0.0, 0.0]], scores=[1.0])
    assert not m.dt_matched.any()
    m = run([[0.8, 0.8]], scores=[1.0])
    assert m.dt_match_gt[0, 0] == 1  # equal similarity: the later GT wins (>= best)


def test_image_with_only_ignored_gt_ignores_all_detections():
    m = run([[0.9], [0.1]], no_dense=[True])
    assert m.dt_ignore.all() and not m.dt_matched.any()
    empty = match_image(
        np.zeros((2, 0)),
        None,
        np.zeros(0, bool),
        np.zeros(0, bool),
        np.zeros(0),
        np.full(2, 100.0),
        np.array([0.9, 0.8]),
        ALL,
        THR,
    )
    assert empty.dt_ignore.all()


def test_match_to_ignored_gt_is_ignored_and_regular_gt_preferred():
    # GT 0 has no dense points (ignored), GT 1 regular; det matches the regular one even
    # though the ignored GT is more similar (ignored GTs are sorted last)
    m = run([[0.95, 0.6]], no_dense=[True, False], scores=[1.0])
    assert m.dt_match_gt[0, 0] == 1 and not m.dt_ignore[0, 0]
    # above 0.6 only the ignored GT remains: matched, and the detection is ignored
    t = int(np.flatnonzero(np.isclose(THR, 0.7))[0])
    assert m.dt_match_gt[t, 0] == 0 and m.dt_ignore[t, 0]


def test_box_fallback_marks_detections_on_unannotated_people_ignored():
    # det 1 overlaps nothing by GPS but has box IoU 0.85 with the ignored GT 1
    sim = [[0.9, 0.0], [0.0, 0.0]]
    box = [[0.9, 0.0], [0.0, 0.85]]
    m = run(sim, no_dense=[False, True], box=box)
    assert m.dt_ignore[:, 1].all()  # every threshold
    assert m.dt_matched[-1, 1] and not m.dt_matched[0, 1]  # recorded at the last only
    # without the fallback the detection is a false positive
    m2 = run(sim, no_dense=[False, True])
    assert not m2.dt_ignore[:, 1].any() and not m2.dt_matched[:, 1].any()
    # box IoU below 0.8 does not count
    m3 = run(sim, no_dense=[False, True], box=[[0.9, 0.0], [0.0, 0.79]])
    assert not m3.dt_ignore[:, 1].any()


def test_box_fallback_uses_last_threshold_state_for_all_thresholds():
    """Quirk §8.5: a det matched to a regular GT at 0.5 but unmatched at 0.95 whose box
    fits an ignored GT gets that GT's ignore flag at every threshold."""
    sim = [[0.6, 0.0]]
    box = [[0.5, 0.9]]
    m = run(sim, no_dense=[False, True], box=box, scores=[1.0])
    assert m.dt_matched[0, 0] and m.dt_match_gt[0, 0] == 0
    assert m.dt_ignore[0, 0]  # matched to a regular GT at 0.5, yet ignored


def test_unmatched_detection_out_of_area_range_is_ignored():
    m = run([[0.1]], gt_area=[50 * 50], det_area=[200 * 200], rng=(32**2, 96**2), scores=[1.0])
    assert m.dt_ignore.all()
    m = run([[0.1]], gt_area=[50 * 50], det_area=[50 * 50], rng=(32**2, 96**2), scores=[1.0])
    assert not m.dt_ignore.any()


def test_crowd_gt_can_absorb_several_detections():
    m = run([[0.9], [0.9]], no_dense=[True], crowd=[True])
    assert m.dt_ignore.all()  # all GT ignored
    m = run([[0.9, 0.0], [0.0, 0.9], [0.0, 0.9]], no_dense=[False, True], crowd=[False, True])
    assert m.dt_matched[0].tolist() == [True, True, True]
    assert m.dt_ignore[0].tolist() == [False, True, True]


def test_box_iou_matches_hand_values():
    dt = np.array([[0, 0, 10, 10], [5, 5, 10, 10], [100, 100, 1, 1.0]])
    gt = np.array([[0, 0, 10, 10], [0, 0, 20, 20.0]])
    iou = box_iou(dt, gt, np.array([False, True]))
    np.testing.assert_allclose(iou[0], [1.0, 1.0])  # crowd: inter / det area
    np.testing.assert_allclose(iou[1], [25 / 175, 1.0])
    np.testing.assert_allclose(iou[2], [0.0, 0.0])


def test_accumulate_hand_computed_ap():
    """Two images: 3 GTs; detections sorted: TP, FP, TP (scores .9 .8 .7), one GT missed.

    precision after each: 1, 1/2, 2/3 -> interpolated 1, 2/3, 2/3; recall 1/3, 1/3, 2/3.
    At 101 recall points: r <= 1/3 -> 1 (34 points: 0.00..0.33), 1/3 < r <= 2/3 -> 2/3
    (33 points: 0.34..0.66), beyond -> 0. AP = (34 + 33 * 2/3) / 101.
    """
    params = EvalParams(min_iou=0.95)  # one threshold keeps the arithmetic simple
    thr = params.iou_thrs
    m1 = match_image(
        np.array([[0.99, 0.0], [0.0, 0.0]]),
        None,
        np.zeros(2, bool),
        np.zeros(2, bool),
        np.full(2, 5000.0),
        np.full(2, 5000.0),
        np.array([0.9, 0.8]),
        ALL,
        thr,
    )
    m2 = match_image(
        np.array([[0.99]]),
        None,
        np.zeros(1, bool),
        np.zeros(1, bool),
        np.full(1, 5000.0),
        np.full(1, 5000.0),
        np.array([0.7]),
        ALL,
        thr,
    )
    ev = accumulate(
        Matches({(1, 1, 0): m1, (2, 1, 0): m2}, (1, 2), (1,)),
        EvalParams(min_iou=0.95, area_ranges=(("all", 0.0, 1e10),)),
    )
    ap = ev.precision[0, :, 0, 0, 0].mean()
    assert ap == (34 + 33 * 2 / 3) / 101
    assert ev.recall[0, 0, 0, 0] == 2 / 3


def test_kernel_equals_reference_twin():
    from dpeval.evaluation import _kernels as _match_kernels
    from dpeval.evaluation import _reference as _match_reference

    rng = np.random.default_rng(5)
    for _ in range(200):
        d, g = rng.integers(0, 6), rng.integers(0, 6)
        sim = np.round(rng.random((d, g)), 1) * (rng.random((d, g)) < 0.7)
        box = np.round(rng.random((d, g)), 1)
        ig = np.sort(rng.random(g) < 0.3)
        crowd = ig & (rng.random(g) < 0.5)
        for use_box in (False, True):
            a = _match_kernels.greedy_match(sim, ig, crowd, THR, box, use_box, 0.8)
            b = _match_reference.greedy_match(sim, ig, crowd, THR, box, use_box, 0.8)
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


def test_batched_matching_equals_image_by_image(monkeypatch):
    """``match`` on a large set runs every (image, area range) in one kernel call; the
    matches must be those of ``match_image`` image by image, edge cases included (no GT,
    no detection, every GT ignored, crowds, out-of-range areas, ties, zeros)."""
    import sys
    from types import SimpleNamespace

    from dpeval.evaluation.prepare import ImageSims

    match_mod = sys.modules["dpeval.evaluation.match"]
    rng = np.random.default_rng(8)
    anns, images = [], []
    for k in range(400):
        d, g = int(rng.integers(0, 7)), int(rng.integers(0, 6))
        gt_index = np.arange(len(anns), len(anns) + g)
        for _ in range(g):
            anns.append(
                SimpleNamespace(
                    has_dense=bool(rng.random() < 0.8),
                    iscrowd=bool(rng.random() < 0.15),
                    area=float(rng.choice([500.0, 2000.0, 9216.0, 50000.0])),
                )
            )

        def sim(d=d, g=g):
            return np.round(rng.random((d, g)), 1) * (rng.random((d, g)) < 0.7)

        images.append(
            ImageSims(
                image_id=k,
                category_id=1,
                gt_index=gt_index,
                det_index=np.arange(d),
                det_scores=np.sort(rng.random(d))[::-1].copy(),
                det_area=rng.choice([500.0, 2000.0, 9216.0, 50000.0], d),
                gps_paper=sim(),
                gps_per_part=sim(),
                mask_iou=sim(),
                box_iou=np.round(rng.random((d, g)), 1),
            )
        )
    gt = SimpleNamespace(annotations=anns, images=dict.fromkeys(range(400)), categories={1: "p"})
    sims = SimpleNamespace(images=images)
    monkeypatch.setattr(match_mod._kernel_turn, "calls", 10**9)  # the kernel, not the twin
    for metric in ("gps", "gpsm", "iou"):
        params = EvalParams(metric=metric)
        assert len(images) * len(params.area_ranges) >= match_mod.BATCH_AFTER
        batched = match_mod.match(sims, gt, params)
        monkeypatch.setattr(match_mod, "BATCH_AFTER", 10**9)
        single = match_mod.match(sims, gt, params)
        monkeypatch.undo()
        monkeypatch.setattr(match_mod._kernel_turn, "calls", 10**9)
        assert batched.images.keys() == single.images.keys()
        assert (batched.image_ids, batched.cat_ids) == (single.image_ids, single.cat_ids)
        for key, want in single.images.items():
            got = batched.images[key]
            for field in ("dt_matched", "dt_match_gt", "dt_ignore", "dt_scores", "gt_ignore"):
                a, b = getattr(got, field), getattr(want, field)
                assert a.dtype == b.dtype and a.shape == b.shape, (key, field)
                np.testing.assert_array_equal(a, b, err_msg=f"{key} {field}")
        assert sum(m.dt_matched.any() for m in batched.images.values()) > 100
