"""The official evaluator's upper-bound ("oracle") modes, ``dpeval score --oracle``.

Reference: a slow, per-pair transcription of the official rule (the 2019 evaluator's
``UB_geo_igt``, ``UB_geo_igt_uv0``, ``UB_geo_uv0`` and ``UB_geo_iuvgt`` flags): at each GT
point inside the detection box the GT part (and for ``gt-iuv`` also U, V) or U = V = 0
replace the prediction before the closest vertex is found; points outside the box keep
no vertex. It uses ``BodyTemplate.closest_vertices`` on float charts, not the uint8 lookup
table the scorer uses, and recomputes every (detection, GT) GPS entry from scratch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dpeval
from dpeval.errors import ParamsError
from dpeval.evaluation.prepare import prepare
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.geodesic import GeodesicSolver
from dpeval.params import KAPPA_PAPER, ORACLES

ROOT = Path(__file__).resolve().parents[2]
GT = ROOT / "examples" / "gt.json"
PREDS = ROOT / "examples" / "preds.json"


@pytest.fixture(scope="module")
def case(open_template):
    gt = load_ground_truth(GT)
    preds = load_predictions(PREDS)
    return gt, preds, open_template, GeodesicSolver(open_template)


def _reference_gps(mode, gt, preds, tpl, solver, image) -> np.ndarray:
    """(D, G) paper-kappa GPS of one image under ``mode``, pair by pair."""
    out = np.zeros((len(image.det_index), len(image.gt_index)))
    for j, g in enumerate(image.gt_index):
        a = gt.annotations[g]
        if not a.has_dense or a.n_points == 0:
            continue
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        x = gx + np.asarray(a.dp_x) * gw / 255.0
        y = gy + np.asarray(a.dp_y) * gh / 255.0
        gi = np.asarray(a.dp_I, dtype=np.int64)
        gu, gv = np.asarray(a.dp_U, float), np.asarray(a.dp_V, float)
        gt_vertex = tpl.closest_vertices(gi, gu, gv)
        valid = gt_vertex >= 0
        for k, d in enumerate(image.det_index):
            det = preds.detections[d]
            iuv = det.load_iuv()
            dx, dy, dw, dh = (float(t) for t in det.bbox)
            total = 0.0
            for n in range(len(x)):
                if not valid[n]:
                    continue
                col, row = int(x[n] - dx), int(y[n] - dy)  # truncation toward zero
                inside = (
                    col >= 0 and row >= 0 and col < dw and row < dh
                    and col < iuv.shape[2] and row < iuv.shape[1]
                )  # fmt: skip
                if not inside:
                    continue
                pi = int(iuv[0, row, col])
                pu, pv = iuv[1, row, col] / 255.0, iuv[2, row, col] / 255.0
                pi = 0 if pi > 24 else pi
                if mode == "gt-iuv":
                    part, u, v = gi[n], gu[n], gv[n]
                elif mode == "gt-parts":
                    part, u, v = gi[n], pu, pv
                elif mode == "gt-parts-uv0":
                    part, u, v = gi[n], 0.0, 0.0
                else:  # uv0
                    part, u, v = pi, 0.0, 0.0
                if part == 0:
                    continue
                vert = tpl.closest_vertices(np.array([part]), np.array([u]), np.array([v]))[0]
                dist = solver.pairs(np.array([gt_vertex[n]]), np.array([vert]))[0]
                total += np.exp(-(dist**2) / (2 * KAPPA_PAPER**2))
            out[k, j] = total / valid.sum()
    return out


@pytest.mark.parametrize("mode", list(ORACLES))
def test_oracle_gps_matches_pairwise_reference(case, mode):
    gt, preds, tpl, solver = case
    sims = prepare(preds, gt, tpl, solver, with_masks=False, workers=1, oracle=mode)
    checked = 0
    for image in sims.images[:4]:
        ref = _reference_gps(mode, gt, preds, tpl, solver, image)
        np.testing.assert_allclose(image.gps_paper, ref, rtol=0, atol=1e-9)
        checked += ref.size
    assert checked > 10


def test_gt_iuv_gps_is_the_fraction_of_points_inside_the_box(case):
    """Analytic: with GT I, U, V every inside point is exact (GPS term 1), outside 0."""
    gt, preds, tpl, solver = case
    sims = prepare(preds, gt, tpl, solver, with_masks=False, workers=1, oracle="gt-iuv")
    seen_partial = False
    for image in sims.images:
        for j, g in enumerate(image.gt_index):
            a = gt.annotations[g]
            if not a.has_dense:
                continue
            gx, gy, gw, gh = (float(t) for t in a.bbox)
            x = gx + np.asarray(a.dp_x) * gw / 255.0
            y = gy + np.asarray(a.dp_y) * gh / 255.0
            for k, d in enumerate(image.det_index):
                det = preds.detections[d]
                h, w = det.load_iuv().shape[1:]
                dx, dy, dw, dh = (float(t) for t in det.bbox)
                col, row = np.trunc(x - dx), np.trunc(y - dy)
                inside = (col >= 0) & (row >= 0) & (col < min(dw, w)) & (row < min(dh, h))
                assert image.gps_per_part[k, j] == pytest.approx(inside.mean(), abs=1e-12)
                assert image.gps_paper[k, j] == pytest.approx(inside.mean(), abs=1e-12)
                seen_partial |= 0 < inside.mean() < 1
    assert seen_partial  # the example has detections that cut people


def test_oracle_orders_and_labels(case):
    """Perfect parts help, collapsing the chart to a point hurts; masks never change;
    the summary says it is an upper bound."""
    _gt, _preds, tpl, solver = case
    base = dpeval.score(PREDS, GT, template=tpl, solver=solver, workers=1)
    res = {
        m: dpeval.score(PREDS, GT, template=tpl, solver=solver, workers=1, oracle=m)
        for m in ORACLES
    }
    ap = {m: s.metrics["gps_perpart"]["AP"] for m, s in res.items()}
    assert ap["gt-iuv"] >= ap["gt-parts"] > base.metrics["gps_perpart"]["AP"] > ap["uv0"]
    assert ap["gt-parts"] > ap["gt-parts-uv0"]
    for s in res.values():
        assert s.metrics["iou"] == base.metrics["iou"]
        assert s.to_dict()["oracle"] == s.oracle
        assert s.lines()[1].startswith(f"ORACLE {s.oracle}")
    assert "oracle" not in base.to_dict()


def test_unknown_oracle_and_dense_maps_are_refused(case):
    _gt, _preds, tpl, solver = case
    with pytest.raises(ParamsError, match="unknown oracle 'gt'"):
        dpeval.score(PREDS, GT, template=tpl, solver=solver, oracle="gt")


def test_report_oracle_table_equals_separate_oracle_runs(case):
    """The report's table reuses the real run's mask IoUs; it must equal full runs."""
    from dpeval.insight.oracle import oracle_table

    gt, preds, tpl, solver = case
    sims = prepare(preds, gt, tpl, solver, workers=1)
    table = oracle_table(gt, preds, tpl, solver, sims, workers=1)
    assert list(table.index) == ["model", *ORACLES]
    for mode in table.index:
        s = dpeval.score(
            PREDS, GT, template=tpl, solver=solver, workers=1,
            oracle=None if mode == "model" else mode,
        )  # fmt: skip
        row = table.loc[mode]
        assert row["gpsm_AP"] == s.metrics["gpsm"]["AP"]
        assert row["gps_perpart_AP"] == s.metrics["gps_perpart"]["AP"]
        assert row["gps_paper_AP"] == s.metrics["gps_paper"]["AP"]
        assert row["AUC10"] == s.metrics["points"]["AUC10"]
