"""The sanity run ``dpeval score GT GT``: the ground truth scored against itself.

GPS and GPSm AP/AR must be exactly 1 under both protocols. Mask IoU per person is
checked against an independent count: the detection's foreground is the evaluator's GT
mask plus the pixels of GT points outside it, so IoU = |M| / |M + P| (the ceiling the
README documents).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dpeval import score
from dpeval.cli import main
from dpeval.errors import DpevalWarning
from dpeval.evaluation.gt_as_predictions import predictions_from_ground_truth
from dpeval.evaluation.masks import detection_mask, gt_mask, mask_iou
from dpeval.formats import load_ground_truth

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def solver(open_template):
    from dpeval.geodesic import GeodesicSolver

    return GeodesicSolver(open_template)


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_ground_truth_scores_one(protocol, open_template, solver):
    gt = EXAMPLES / "gt.json"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        s = score(gt, gt, template=open_template, solver=solver, protocol=protocol, workers=1)
    assert any("sanity run" in str(w.message) for w in said if w.category is DpevalWarning)
    for block in ("gps_paper", "gps_perpart", "gpsm"):
        for stat in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"):
            assert s.metrics[block][stat] == 1.0, (block, stat)
    assert s.metrics["iou"]["AP"] == 1.0  # every person's IoU is above 0.95 here
    # uint8 U, V cannot reach every template vertex (see the README): not exactly 1.
    # Measured on the example: AUC10 0.99602 (0.99561 with plain rounding of U, V)
    assert 0.9958 < s.metrics["points"]["AUC10"] < 1.0
    assert 0.9972 < s.metrics["points"]["AUC30"] < 1.0


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_mask_iou_is_the_documented_ceiling(protocol, open_template):
    gt = load_ground_truth(EXAMPLES / "gt.json")
    preds = predictions_from_ground_truth(gt, open_template, protocol=protocol)
    assert len(preds.detections) == sum(a.has_dense for a in gt.annotations)
    by_index = {d.index: d for d in preds.detections}
    below = 0
    for a in gt.annotations:
        if not a.has_dense:
            continue
        im = gt.images[a.image_id]
        det = by_index[a.index]
        g = gt_mask(a.bbox, a.dp_masks, a.segmentation, im.height, im.width, protocol)
        d = detection_mask(det.load_iuv(), det.bbox, im.height, im.width)
        # independent: GT mask pixels, plus point pixels inside the box's int extent
        full = np.zeros((im.height, im.width), bool)
        full[g.y0 : g.y0 + g.mask.shape[0], g.x0 : g.x0 + g.mask.shape[1]] = g.mask
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        col = np.trunc(gx + a.dp_x * gw / 255.0 - gx).astype(int)
        row = np.trunc(gy + a.dp_y * gh / 255.0 - gy).astype(int)
        keep = (col < int(gw)) & (row < int(gh))
        pts = np.zeros_like(full)
        r, c = row[keep] + int(gy), col[keep] + int(gx)
        ok = (r < im.height) & (c < im.width)
        pts[r[ok], c[ok]] = True
        box = np.zeros_like(full)  # the detection map covers int(h) x int(w) at int(x, y)
        box[int(gy) : int(gy) + int(gh), int(gx) : int(gx) + int(gw)] = True
        m = full & box
        expected = m.sum() / (m | pts).sum() if full.sum() == m.sum() else None
        got = mask_iou(d, g, False)
        if expected is not None:
            assert got == pytest.approx(expected, abs=1e-12)
        assert 0.99 < got <= 1.0
        below += got < 1.0
    assert below > 0  # some points lie just outside their mask: the ceiling is real


def test_cli_score_gt_gt(capsys):
    gt = str(EXAMPLES / "gt.json")
    assert main(["score", gt, gt, "--metric", "gps"]) == 0
    captured = capsys.readouterr()
    assert "gps_perpart  100.00 100.00 100.00" in captured.out
    assert "sanity run" in captured.err and "Traceback" not in captured.err
