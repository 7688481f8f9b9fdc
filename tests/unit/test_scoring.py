"""Similarities, GPS, pointwise metrics and the end-to-end score on known cases."""

from __future__ import annotations

import numpy as np
import pytest
from _cases import EuclideanSolver, make_case, records

from dpeval.evaluation import DensePoseMetric, auc, prepare, ratio_correct_points
from dpeval.evaluation.run import evaluate_similarities
from dpeval.formats.model import Detection, Predictions
from dpeval.params import KAPPA_PER_PART


@pytest.fixture(scope="module")
def case():
    return make_case(seed=0)


def run_all(
    gt, preds, template, solver, protocol="challenge2019", kappa="per-part", decode="touching"
):
    sims = prepare(preds, gt, template, solver, protocol=protocol, workers=1, decode=decode)
    return sims, evaluate_similarities(
        sims,
        gt,
        ["gps", "gpsm", "iou", "points"],
        kappa=kappa,
        protocol=protocol,
        min_iou=0.5,
        max_dets=20,
    )


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_perfect_prediction_scores_one_everywhere(case, open_template, protocol):
    gt, preds = records(*case)
    sims, out = run_all(gt, preds, open_template, EuclideanSolver(open_template), protocol)
    for s in sims.images:
        gps = s.gps_per_part
        matched = [np.flatnonzero(s.det_index == i) for i in range(len(preds.detections))]
        assert gps.max() == 1.0 and s.mask_iou.max() == 1.0
        assert any(len(m) for m in matched)
    for key in ("gps_paper", "gps_perpart", "gpsm", "iou"):
        m = out["metrics"][key]
        assert m["AP"] == 1.0 and m["AR"] == 1.0 and m["AP50"] == 1.0, key
    assert out["metrics"]["points"]["AUC10"] == 1.0
    assert out["metrics"]["points"]["AUC30"] == 1.0


def test_gps_hand_computed(open_template):
    """One GT with 4 points; the detection hits, misses (background), lies outside, and
    lands on a known other vertex."""
    gt_dict, dets = make_case(seed=3, n_images=1, points=4)
    gt_dict["annotations"] = gt_dict["annotations"][:1] + gt_dict["annotations"][-1:]
    ann = gt_dict["annotations"][0]
    img, bbox, score, iuv = dets[0]
    iuv = iuv.copy()
    _x, _y, w, h = (int(v) for v in bbox)
    cols = (np.array(ann["dp_x"]) * w / 255).astype(int)
    rows = (np.array(ann["dp_y"]) * h / 255).astype(int)
    # point 1: background
    iuv[:, rows[1], cols[1]] = 0
    # point 3: another chart position of the same part
    iuv[1, rows[3], cols[3]] = (round(ann["dp_U"][3] * 255) + 128) % 256
    gt, preds = records(gt_dict, [(img, bbox, score, iuv)])
    # point 2: shift the detection box so that this point falls outside it
    solver = EuclideanSolver(open_template)
    sims = prepare(preds, gt, open_template, solver, workers=1)
    t = open_template
    parts = np.array(ann["dp_I"], dtype=int)
    gv = t.closest_vertices(parts, ann["dp_U"], ann["dp_V"])
    pv3 = t.closest_vertices([parts[3]], [iuv[1, rows[3], cols[3]] / 255], [ann["dp_V"][3]])[0]
    d3 = np.linalg.norm(t.vertices[gv[3]].astype(float) - t.vertices[pv3].astype(float))
    k = np.array(KAPPA_PER_PART)[parts]
    expected = (1 + 0 + 1 + np.exp(-(d3**2) / (2 * k[3] ** 2))) / 4
    got = sims.images[0].gps_per_part[0, 0]
    assert got == pytest.approx(expected, rel=1e-12)
    expected_paper = (2 + np.exp(-(d3**2) / (2 * 0.255**2))) / 4
    assert sims.images[0].gps_paper[0, 0] == pytest.approx(expected_paper, rel=1e-12)
    # pointwise errors of the best detection: 0, inf, 0, d3
    np.testing.assert_allclose(sims.point_dist[:4], [0, np.inf, 0, d3])


def test_points_outside_the_box_are_misses(open_template):
    gt_dict, dets = make_case(seed=4, n_images=1, points=30)
    img, bbox, score, iuv = dets[0]
    # move the detection box by its width: every GT point of person 1 is outside it
    moved = [bbox[0] + bbox[2] + 2, bbox[1], bbox[2], bbox[3]]
    gt, preds = records(gt_dict, [(img, moved, score, iuv)])
    sims = prepare(preds, gt, open_template, EuclideanSolver(open_template), workers=1)
    assert sims.images[0].gps_per_part[0, 0] == 0.0


def test_truncation_counts_points_just_left_of_the_box(open_template):
    """col = int(x - dx) truncates toward zero: x up to 1 px left of the box is inside."""
    gt_dict, dets = make_case(seed=5, n_images=1, points=10)
    img, bbox, score, iuv = dets[0]
    ann = gt_dict["annotations"][0]
    x, _, w, _ = bbox
    # GT point 0 at 0.5 px left of the detection box: dp_x chosen for x - dx = -0.5
    shifted = [x + 0.5 + (ann["dp_x"][0] * w / 255.0) - 0.5 * 0, bbox[1], w, bbox[3]]
    col0 = int(ann["dp_x"][0] * w / 255.0)
    shifted[0] = x + col0 + 0.9  # point x = x + col0 + 0.5 -> x - dx = -0.4 -> col 0
    new_iuv = np.zeros_like(iuv)
    new_iuv[:, :, 0] = iuv[:, :, col0]  # column 0 of the new box holds the old column
    gt, preds = records(gt_dict, [(img, shifted, score, new_iuv)])
    sims = prepare(preds, gt, open_template, EuclideanSolver(open_template), workers=1)
    assert sims.point_dist[0] == 0.0


def test_rcp_and_auc_exact():
    d = np.array([0.0, 0.02, 0.05, 0.2, np.inf, np.nan])
    np.testing.assert_allclose(
        ratio_correct_points(d, np.array([0, 0.02, 0.1, 0.3])), [0.2, 0.4, 0.6, 0.8]
    )
    # AUC10 = mean(1 - d/0.1, clipped) = (1 + 0.8 + 0.5 + 0 + 0) / 5
    assert auc(d, 0.10) == pytest.approx(0.46)
    # and equals a fine numerical integral of the RCP step curve
    t = np.linspace(0, 0.3, 300001)
    f = ratio_correct_points(d, t)
    assert auc(d, 0.30) == pytest.approx(np.trapezoid(f, t) / 0.3, abs=1e-5)


def test_streaming_metric_is_batch_split_invariant(open_template):
    gt_dict, dets = make_case(seed=7, n_images=6)
    # imperfect predictions: jitter scores and corrupt some UVs so AP < 1
    rng = np.random.default_rng(0)
    noisy = []
    for img, b, _s, iuv in dets:
        iuv = iuv.copy()
        iuv[1] = (iuv[1].astype(int) + rng.integers(0, 60, iuv[1].shape)) % 256
        noisy.append((img, b, float(rng.random()), iuv))
    gt, preds = records(gt_dict, noisy)
    solver = EuclideanSolver(open_template)
    whole = DensePoseMetric(open_template, solver=solver)
    whole.update(preds, gt)
    ref = whole.compute()
    assert 0 < ref["metrics"]["gps_perpart"]["AP"] < 1
    split = DensePoseMetric(open_template, solver=solver)
    for ids in ([4, 1], [6], [2, 3, 5]):
        sub_gt = type(gt)(
            images={i: gt.images[i] for i in ids},
            annotations=tuple(a for a in gt.annotations if a.image_id in ids),
        )
        sub_p = Predictions(
            "instances", detections=tuple(d for d in preds.detections if d.image_id in ids)
        )
        split.update(sub_p, sub_gt)
    got = split.compute()
    assert got["metrics"] == ref["metrics"]
    assert got["official_summary"] == ref["official_summary"]
    with pytest.raises(Exception, match="already given"):
        split.update(Predictions("instances"), gt)


def test_lower_scores_on_worse_predictions(open_template):
    gt_dict, dets = make_case(seed=8, n_images=4)
    gt, perfect = records(gt_dict, dets)
    bad = []
    for d in perfect.detections:
        iuv = d.load_iuv().copy()
        iuv[1] = 255 - iuv[1]
        bad.append(Detection(d.image_id, 1, d.bbox, d.score, d.iuv_shape, d.index, _iuv=iuv))
    solver = EuclideanSolver(open_template)
    _, good_out = run_all(gt, perfect, open_template, solver)
    _, bad_out = run_all(gt, Predictions("instances", detections=tuple(bad)), open_template, solver)
    assert bad_out["metrics"]["gps_perpart"]["AP"] < good_out["metrics"]["gps_perpart"]["AP"]
    assert bad_out["metrics"]["points"]["AUC10"] < 0.9
    # the mask is unchanged, so IoU-only AP stays perfect
    assert bad_out["metrics"]["iou"]["AP"] == 1.0


def test_worker_processes_equal_serial(open_template):
    gt_dict, dets = make_case(seed=9, n_images=20, points=30)
    gt, preds = records(gt_dict, dets)
    solver = EuclideanSolver(open_template)
    a = prepare(preds, gt, open_template, solver, workers=1)
    b = prepare(preds, gt, open_template, solver, workers=2)
    assert len(a.images) == len(b.images) == 20
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(x.gps_per_part, y.gps_per_part)
        np.testing.assert_array_equal(x.mask_iou, y.mask_iou)
    np.testing.assert_array_equal(a.point_dist, b.point_dist)


def test_skipping_untouched_detections_changes_nothing(open_template):
    """Detections that touch no GT box or mask are not decoded; the numbers must be
    those of decoding everything."""
    gt_dict, dets = make_case(seed=10, n_images=5, points=30)
    rng = np.random.default_rng(1)
    extra = []
    for img in range(1, 6):  # far-away false positives, and one just touching a box
        iuv = np.ones((3, 20, 20), np.uint8)
        extra.append((img, [600.0, 440.0, 20.0, 20.0], float(rng.random()), iuv))
    a0 = next(a for a in gt_dict["annotations"] if "dp_x" in a)
    x, y, w, _ = a0["bbox"]
    extra.append(
        (a0["image_id"], [x + w + 0.5, y, 10.0, 10.0], 0.99, np.ones((3, 10, 10), np.uint8))
    )
    gt, preds = records(gt_dict, dets + extra)
    solver = EuclideanSolver(open_template)
    fast = run_all(gt, preds, open_template, solver)[1]
    full = run_all(gt, preds, open_template, solver, decode="all")[1]
    assert fast["metrics"] == full["metrics"]
