"""Error taxonomy on hand-built cases; per-part numbers add up to the overall ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _cases import EuclideanSolver, make_case, records

from dpeval.evaluation import prepare
from dpeval.evaluation.prepare import Similarities
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.insight.tables import coarse_part_errors, part_errors, point_gps
from dpeval.insight.taxonomy import (
    CATEGORIES,
    FRONT_BACK_PART,
    classify,
    classify_points,
    part_confusion,
    taxonomy_counts,
)
from dpeval.template import MIRROR_PART

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
C = {name: k for k, name in enumerate(CATEGORIES)}


def test_classify_hand_built_points():
    inf = np.inf
    dist = np.array([0.03, inf, 0.40, 0.35, 0.30, 0.25, np.nan, 0.09, 0.5])
    gt_part = np.array([2, 2, 7, 1, 1, 1, 1, 9, 15])
    pred_part = np.array([2, 0, 8, 2, 20, 1, 1, 7, 16])
    mirror = np.array([0.3, inf, 0.02, 0.5, 0.5, 0.5, 0.1, 0.01, 0.6])
    got = classify(dist, gt_part, pred_part, mirror).tolist()
    assert got == [
        C["correct"],  # under 10 cm
        C["background_miss"],
        C["lr_swap"],  # near the mirror, far from the GT vertex
        C["front_back"],  # torso back predicted as torso front
        C["wrong_part"],
        C["far_error"],  # right part, 25 cm away
        -1,  # excluded GT point
        C["correct"],  # 9 cm beats the mirror rule
        C["wrong_part"],  # mirror too far: left/right part id alone is not a swap
    ]


def test_front_back_partners_are_symmetric_and_not_left_right():
    for p in range(1, 25):
        q = FRONT_BACK_PART[p]
        if q:
            assert FRONT_BACK_PART[q] == p and MIRROR_PART[p] != q
    assert FRONT_BACK_PART[3] == FRONT_BACK_PART[23] == 0


def _vertex_parts(template):
    part = np.zeros(template.n_vertices, dtype=np.int64)
    part[np.asarray(template.chart_vertex)] = np.asarray(template.chart_part)
    return part


def test_mirrored_prediction_is_a_left_right_swap(open_template):
    """GT points on the limbs predicted at their mirror vertex, and other hand-built
    predictions, classified through the template and a solver."""
    t = open_template
    vpart = _vertex_parts(t)
    x = np.asarray(t.vertices)[:, 0]
    rng = np.random.default_rng(0)
    limb = np.flatnonzero((np.abs(x) > 0.2) & (vpart > 0))
    gv = rng.choice(limb, 30, replace=False)
    solver = EuclideanSolver(t)
    pv = np.asarray(t.mirror)[gv]
    d = solver.pairs(gv, pv)
    assert (d > 0.2).all()
    sims = Similarities(
        images=[], point_gt=np.zeros(30, dtype=np.int64), point_part=vpart[gv], point_dist=d,
        protocol="challenge2019", point_vertex=gv, point_pred_vertex=pv,
        point_pred_part=np.asarray(MIRROR_PART)[vpart[gv]],
    )  # fmt: skip
    assert (classify_points(sims, t, solver) == C["lr_swap"]).all()
    # the same points predicted on the background are misses, exact ones are correct
    miss = Similarities([], sims.point_gt, sims.point_part, np.full(30, np.inf), "challenge2019",
                        gv, np.full(30, -1), np.zeros(30, dtype=np.int64))  # fmt: skip
    assert (classify_points(miss, t, solver) == C["background_miss"]).all()
    exact = Similarities([], sims.point_gt, sims.point_part, np.zeros(30), "challenge2019",
                         gv, gv, vpart[gv])  # fmt: skip
    assert (classify_points(exact, t, solver) == C["correct"]).all()


def test_perfect_predictions_record_the_gt_vertex_and_part(open_template):
    gt, preds = records(*make_case(seed=0))
    sims = prepare(preds, gt, open_template, EuclideanSolver(open_template), workers=1)
    ok = ~np.isnan(sims.point_dist)
    assert np.array_equal(sims.point_pred_vertex[ok], sims.point_vertex[ok])
    assert np.array_equal(sims.point_pred_part[ok], sims.point_part[ok])
    codes = classify_points(sims, open_template, EuclideanSolver(open_template))
    assert (codes[ok] == C["correct"]).all()


@pytest.fixture(scope="module")
def example(open_template):
    gt = load_ground_truth(EXAMPLES / "gt.json")
    preds = load_predictions(EXAMPLES / "preds.json", images=gt.images)
    solver = EuclideanSolver(open_template)
    return prepare(preds, gt, open_template, solver, workers=1), solver


def test_per_part_numbers_sum_to_the_overall(example, open_template):
    sims, solver = example
    codes = classify_points(sims, open_template, solver)
    counts = taxonomy_counts(codes, sims.point_part)
    parts = counts.drop(index="all")
    cats = list(CATEGORIES)
    assert (parts[cats].sum() == counts.loc["all", cats]).all()
    n_valid = int((~np.isnan(sims.point_dist)).sum())
    assert counts.loc["all", "n_points"] == n_valid
    # classification agrees with the errors: correct <=> under 10 cm; miss <=> inf
    ok = codes >= 0
    assert np.array_equal(codes[ok] == 0, sims.point_dist[ok] < 0.10)
    assert np.array_equal(codes[ok] == 1, np.isinf(sims.point_dist[ok]))

    pe = part_errors(sims.point_dist, sims.point_part)
    rows = pe.drop(index="all")
    assert rows["n_points"].sum() == pe.loc["all", "n_points"] == n_valid
    assert rows["n_missed"].sum() == pe.loc["all", "n_missed"]
    weighted = (rows["gps"].fillna(0) * rows["n_points"]).sum() / rows["n_points"].sum()
    assert weighted == pytest.approx(pe.loc["all", "gps"], abs=1e-12)
    g = point_gps(sims.point_dist, sims.point_part)
    assert pe.loc["all", "gps"] == pytest.approx(np.nanmean(g), abs=1e-12)
    coarse = coarse_part_errors(sims.point_dist, sims.point_part)
    assert coarse.drop(index="all")["n_points"].sum() == n_valid
    assert coarse.loc["all", "auc10"] == pytest.approx(pe.loc["all", "auc10"], abs=1e-12)

    conf = part_confusion(sims)
    assert conf.shape == (25, 25) and conf.to_numpy().sum() == n_valid
    assert conf.loc[0].sum() == 0
    for p in range(1, 25):
        assert conf.loc[p].sum() == counts.loc[p, "n_points"]
    # background column = misses with nothing predicted (every miss has pred part 0)
    assert conf[0].sum() == counts.loc["all", "background_miss"]
