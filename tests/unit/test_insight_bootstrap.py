"""Image bootstrap: exact weighted AP, official point estimates, coverage, p-values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _cases import EuclideanSolver

from dpeval.evaluation import prepare
from dpeval.evaluation.accumulate import accumulate
from dpeval.evaluation.match import ImageMatch, Matches
from dpeval.evaluation.run import evaluate_similarities
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.insight import _reference
from dpeval.insight._kernels import weighted_ap
from dpeval.insight.bootstrap import (
    MetricTables,
    bootstrap_metrics,
    build_tables,
    compare_metrics,
    resample_weights,
)
from dpeval.params import EvalParams

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def example(open_template):
    gt = load_ground_truth(EXAMPLES / "gt.json")
    preds = load_predictions(EXAMPLES / "preds.json", images=gt.images)
    sims = prepare(preds, gt, open_template, EuclideanSolver(open_template), workers=1)
    return gt, sims


def test_point_estimates_equal_the_official_numbers(example, open_template):
    gt, sims = example
    out = evaluate_similarities(
        sims, gt, ["gps", "gpsm", "iou", "points"],
        kappa="per-part", protocol="challenge2019", min_iou=0.5, max_dets=20,
    )  # fmt: skip
    df = bootstrap_metrics(build_tables(sims, gt), resamples=50, seed=1)
    for key in ("gps_paper", "gps_perpart", "gpsm", "iou"):
        assert df.loc[f"{key}_AP", "value"] == pytest.approx(out["metrics"][key]["AP"], abs=1e-12)
    for key in ("AUC10", "AUC30"):
        assert df.loc[key, "value"] == pytest.approx(out["metrics"]["points"][key], abs=1e-12)
    assert (df["ci_low"] <= df["value"] + 1e-9).all() and (
        df["value"] <= df["ci_high"] + 1e-9
    ).all()
    again = bootstrap_metrics(build_tables(sims, gt), resamples=50, seed=1)
    assert again.equals(df)  # seeded


def _random_matches(rng, n_images, n_thr=10):
    matches = {}
    for i in range(n_images):
        d, g = int(rng.integers(0, 6)), int(rng.integers(0, 4))
        matched = rng.random((n_thr, d)) < np.linspace(0.8, 0.3, n_thr)[:, None]
        ignore = rng.random((n_thr, d)) < 0.1
        matches[(i, 1, 0)] = ImageMatch(
            dt_matched=matched,
            dt_match_gt=np.where(matched, 0, -1),
            dt_ignore=ignore,
            dt_scores=rng.random(d),
            gt_ignore=rng.random(g) < 0.2,
        )
    return matches


def test_weighted_ap_kernel_equals_its_accumulate_twin():
    """Kernel vs the NumPy accumulate steps: integer, fractional and zero weights,
    no detections, resamples without GT (NaN)."""
    rng = np.random.default_rng(11)
    rec = EvalParams().rec_thrs
    for trial in range(30):
        n_img, n_det, n_thr = int(rng.integers(1, 9)), int(rng.integers(0, 40)), 10
        det_image = rng.integers(0, n_img, n_det).astype(np.int64)
        matched = rng.random((n_thr, n_det)) < np.linspace(0.9, 0.2, n_thr)[:, None]
        ignored = rng.random((n_thr, n_det)) < 0.15
        tp = np.ascontiguousarray(matched & ~ignored, dtype=np.uint8)
        fp = np.ascontiguousarray(~matched & ~ignored, dtype=np.uint8)
        gt = rng.integers(0, 4, n_img).astype(np.float64)
        weights = np.vstack(
            [
                resample_weights(n_img, 4, trial),
                rng.integers(0, 3, (4, n_img)),
                rng.random((3, n_img)),
                np.zeros((1, n_img)),
            ]
        ).astype(np.float64)
        got = weighted_ap(det_image, tp, fp, gt, weights, rec)
        ref = _reference.weighted_ap(det_image, tp, fp, gt, weights, rec)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=str(trial))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=str(trial))
        assert np.isnan(got[-1])  # the all-zero row has no GT


def test_weighted_ap_equals_accumulate_on_the_replicated_data():
    """A resample weight k must act exactly like k copies of the image."""
    rng = np.random.default_rng(5)
    params = EvalParams()
    for trial in range(20):
        n = 12
        matches = _random_matches(rng, n)
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        rep = {}
        for i in range(n):
            for c in range(int(w[i])):
                rep[(i * 100 + c, 1, 0)] = matches[(i, 1, 0)]
        ids = sorted({k[0] for k in rep})
        ev = accumulate(Matches(rep, tuple(ids), (1,)), params)
        prec = ev.precision[:, :, 0, 0, 0]
        expected = prec.mean() if (prec > -1).all() else np.nan
        scores = np.concatenate([matches[(i, 1, 0)].dt_scores for i in range(n)])
        order = np.argsort(-scores, kind="mergesort")
        det_image = np.concatenate(
            [np.full(len(matches[(i, 1, 0)].dt_scores), i) for i in range(n)]
        )[order]
        dtm = np.concatenate([matches[(i, 1, 0)].dt_matched for i in range(n)], axis=1)[:, order]
        dtig = np.concatenate([matches[(i, 1, 0)].dt_ignore for i in range(n)], axis=1)[:, order]
        npig = np.array([(~matches[(i, 1, 0)].gt_ignore).sum() for i in range(n)], dtype=float)
        got = weighted_ap(
            det_image.astype(np.int64),
            np.ascontiguousarray(dtm & ~dtig, dtype=np.uint8),
            np.ascontiguousarray(~dtm & ~dtig, dtype=np.uint8),
            npig,
            w[None, :],
            params.rec_thrs,
        )[0]
        if np.isnan(expected):
            assert np.isnan(got), trial
        else:
            assert got == pytest.approx(expected, abs=1e-12), trial


def _tables(per_image_points, rng_dist, n_images):
    """MetricTables of a pointwise-only model: per-image random point errors."""
    n_pts = per_image_points
    auc10, auc30 = np.zeros(n_images), np.zeros(n_images)
    for i in range(n_images):
        d = rng_dist(n_pts[i])
        auc10[i] = np.clip(1 - d / 0.10, 0, 1).sum()
        auc30[i] = np.clip(1 - d / 0.30, 0, 1).sum()
    return MetricTables(
        list(range(n_images)), {}, {"AUC10": auc10, "AUC30": auc30}, n_pts.astype(float),
        EvalParams().rec_thrs,
    )  # fmt: skip


def test_intervals_cover_the_truth_at_about_the_nominal_rate():
    """Each image has its own error scale s ~ U(0.1, 0.3) m and errors d ~ U(0, s) (points
    of one image are correlated): the true AUC10 is 0.05 * ln(3) / 0.2. The 95%
    intervals over 200 independent data sets must cover it about 95% of the time."""
    truth = 0.05 * np.log(3.0) / 0.2
    rng = np.random.default_rng(0)
    hits, trials = 0, 200
    for t in range(trials):
        n = 60
        n_pts = rng.integers(1, 30, n)
        tab = _tables(n_pts, lambda m: rng.uniform(0, rng.uniform(0.1, 0.3), m), n)
        df = bootstrap_metrics(tab, resamples=300, seed=t)
        hits += df.loc["AUC10", "ci_low"] <= truth <= df.loc["AUC10", "ci_high"]
    rate = hits / trials
    assert 0.89 <= rate <= 0.99, rate


def test_resample_weights_are_multinomial():
    w = resample_weights(50, 400, seed=3)
    assert w.shape == (400, 50)
    assert (w.sum(axis=1) == 50).all()
    assert abs(w.mean() - 1.0) < 0.01
    assert np.array_equal(w, resample_weights(50, 400, seed=3))


def test_paired_p_values_uniform_under_the_null_and_small_for_a_better_model():
    rng = np.random.default_rng(1)
    ps = []
    for t in range(200):
        n = 50
        n_pts = rng.integers(5, 20, n)
        a = _tables(n_pts, lambda m: rng.uniform(0, 0.2, m), n)
        b = _tables(n_pts, lambda m: rng.uniform(0, 0.2, m), n)
        ps.append(compare_metrics(a, b, resamples=200, seed=t).loc["AUC10", "p_value"])
    ps = np.array(ps)
    assert 0.01 <= (ps < 0.05).mean() <= 0.11
    assert 0.38 <= (ps < 0.5).mean() <= 0.62
    n_pts = rng.integers(5, 20, 50)
    a = _tables(n_pts, lambda m: rng.uniform(0, 0.2, m), 50)
    b = _tables(n_pts, lambda m: rng.uniform(0, 0.15, m), 50)
    r = compare_metrics(a, b, resamples=500, seed=0).loc["AUC10"]
    assert r["diff"] > 0 and r["ci_low"] > 0 and r["p_value"] < 0.01
    same = compare_metrics(a, a, resamples=100, seed=0).loc["AUC10"]
    assert same["diff"] == 0 and same["p_value"] == 1.0


def test_compare_refuses_different_images():
    rng = np.random.default_rng(2)
    a = _tables(np.full(5, 3), lambda m: rng.uniform(0, 0.2, m), 5)
    b = _tables(np.full(6, 3), lambda m: rng.uniform(0, 0.2, m), 6)
    with pytest.raises(ValueError, match="different ground-truth images"):
        compare_metrics(a, b, resamples=20)
