"""Every mode and both protocols on predictions that are not perfect.

Perfect predictions give 1 under every rule, so they prove nothing. Here:

- the GPSm, GPS and IOU similarity matrices dpeval matches on are checked against
  ``sqrt(GPS x IoU)``, GPS and IoU computed from the official evaluator's recorded
  matrices (``tests/data/official_golden``);
- the paper kappa (0.255) and the per-part table are checked by hand on every GT's
  per-point geodesic errors (kappas typed here, not imported);
- a hand-made case where one GT point lies in the last column of a detection whose box is
  10.7 px wide: inside for the 2019 code (float bound), outside for detectron2
  (``int(w)``); AP of every mode and protocol is derived by hand below.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _cases import full_masks

import dpeval
from dpeval.evaluation import prepare, similarity_matrix
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.formats.model import Detection, Predictions
from dpeval.geodesic import GeodesicSolver
from dpeval.params import EvalParams
from dpeval.template import load_template

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "official_golden"
KAPPA_PAPER = 0.255
KAPPA_COARSE = [0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150]
COARSE = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    assets = tmp_path_factory.mktemp("golden") / "assets"
    shutil.copytree(GOLDEN / "assets", assets)
    return load_template(assets)


@pytest.fixture(scope="module")
def golden(template):
    gt = load_ground_truth(GOLDEN / "gt.json")
    preds = load_predictions(GOLDEN / "preds.json", images=gt.images)
    sims = prepare(preds, gt, template, GeodesicSolver(template), workers=1)
    official = json.loads((GOLDEN / "official.json").read_text())
    return gt, sims, official


def test_mode_matrices_from_official_matrices(golden):
    _, sims, official = golden
    by_image = {s.image_id: s for s in sims.images}
    n_gpsm_differs = 0
    for image_id, rec in official["images"].items():
        if "gps" not in rec:
            continue
        s = by_image[int(image_id)]
        gps, iou = np.asarray(rec["gps"]), np.asarray(rec["mask_iou"])
        want = {"gps": gps, "iou": iou, "gpsm": np.sqrt(gps * iou)}
        for metric, expected in want.items():
            got = similarity_matrix(s, EvalParams(metric=metric))  # type: ignore[arg-type]
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=metric)
        n_gpsm_differs += int(np.sum(np.abs(np.sqrt(gps * iou) - gps * iou) > 0.01))
    assert n_gpsm_differs > 50  # sqrt(x) and x differ on this data


def test_paper_and_per_part_kappa_by_hand(golden):
    """GPS of each GT under its best detection, from the per-point errors dpeval reports."""
    gt, sims, _ = golden
    by_image = {s.image_id: s for s in sims.images}
    checked = 0
    for g, ann in enumerate(gt.annotations):
        if not ann.has_dense:
            continue
        s = by_image[ann.image_id]
        j = int(np.flatnonzero(s.gt_index == g)[0])
        col = s.gps_per_part[:, j]
        if len(col) == 0 or col.max() <= 0 or np.sum(col == col.max()) > 1:
            continue  # no detection, or a tie between detections
        k = int(np.argmax(col))
        sel = sims.point_gt == g
        d, part = sims.point_dist[sel], sims.point_part[sel]
        ok = ~np.isnan(d)
        d, part = d[ok], part[ok]
        paper = np.mean(np.exp(-(d**2) / (2 * KAPPA_PAPER**2)))
        kappa = np.array([KAPPA_COARSE[COARSE[p]] for p in part])
        per_part = np.mean(np.exp(-(d**2) / (2 * kappa**2)))
        assert s.gps_paper[k, j] == pytest.approx(paper, rel=1e-12, abs=1e-15)
        assert s.gps_per_part[k, j] == pytest.approx(per_part, rel=1e-9, abs=1e-12)
        checked += int(abs(paper - per_part) > 0.01)
    assert checked > 20  # the two kappas give different numbers on these GTs


# --- a hand-made case: one GT, one detection, one point in the last column ------------
U8, V8 = 40, 200


def hand_case():
    gt = {
        "images": [{"id": 1, "width": 64, "height": 48, "file_name": "1.jpg"}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0.0, 0.0, 11.0, 11.0],
                "area": 121.0,
                "iscrowd": 0,
                # points at (2.5, 2.5), (5.5, 5.5) and (10.5, 5.5) in the image
                "dp_x": [2.5 * 255 / 11, 5.5 * 255 / 11, 10.5 * 255 / 11],
                "dp_y": [2.5 * 255 / 11, 5.5 * 255 / 11, 5.5 * 255 / 11],
                "dp_I": [1.0, 1.0, 1.0],
                "dp_U": [U8 / 255] * 3,
                "dp_V": [V8 / 255] * 3,
                "dp_masks": full_masks(),  # torso over the whole box
            }
        ],
    }
    iuv = np.zeros((3, 11, 11), np.uint8)
    iuv[0], iuv[1], iuv[2] = 1, U8, V8  # the GT's exact (I, U, V) at every pixel
    det = Detection(1, 1, np.array([0.0, 0.0, 10.7, 10.7]), 0.9, (3, 11, 11), 0, _iuv=iuv)
    return load_ground_truth(gt), Predictions("instances", detections=(det,))


# GPS: 2019 counts the point in column 10 (10 < 10.7): 1; detectron2 (10 >= int(10.7)):
#   it is outside, distance infinite, GPS = 2/3.
# mask IoU (both protocols): GT mask 11 x 11 = 121 px, detection I > 0 cropped to
#   int(10.7) x int(10.7) = 100 px inside it: IoU = 100 / 121 = 0.826.
# GPSm = sqrt(GPS * IoU): 2019 sqrt(100/121) = 0.909; detectron2 sqrt(2/3 * 100/121) = 0.742.
# AP over thresholds 0.50:0.05:0.95 with one GT and one detection = share of thresholds
#   <= the similarity (threshold 0.95 uses min(t, 1 - 1e-10)).
HAND_AP = {
    ("challenge2019", "gps_perpart"): 1.0,  # 1 >= every threshold
    ("challenge2019", "gps_paper"): 1.0,
    ("challenge2019", "gpsm"): 0.9,  # 0.909: 0.50..0.90
    ("challenge2019", "iou"): 0.7,  # 0.826: 0.50..0.80
    ("detectron2", "gps_perpart"): 0.4,  # 0.667: 0.50..0.65
    ("detectron2", "gps_paper"): 0.4,
    ("detectron2", "gpsm"): 0.5,  # 0.742: 0.50..0.70
    ("detectron2", "iou"): 0.7,
}


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_hand_case_similarities(template, protocol):
    gt, preds = hand_case()
    sims = prepare(preds, gt, template, GeodesicSolver(template), protocol=protocol)
    (s,) = sims.images
    want_gps = 1.0 if protocol == "challenge2019" else 2 / 3
    assert s.gps_per_part[0, 0] == pytest.approx(want_gps, abs=1e-12)
    assert s.gps_paper[0, 0] == pytest.approx(want_gps, abs=1e-12)
    assert s.mask_iou[0, 0] == pytest.approx(100 / 121, abs=1e-12)
    gpsm = similarity_matrix(s, EvalParams(metric="gpsm", protocol=protocol))[0, 0]
    assert gpsm == pytest.approx(np.sqrt(want_gps * 100 / 121), abs=1e-12)


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_hand_case_ap_per_mode_and_protocol(template, protocol):
    gt, preds = hand_case()
    summary = dpeval.score(
        preds, gt, template=template, metrics=["gps", "gpsm", "iou"], protocol=protocol, workers=1
    )
    for key in ("gps_perpart", "gps_paper", "gpsm", "iou"):
        ap = summary.metrics[key]["AP"]
        assert ap == pytest.approx(HAND_AP[(protocol, key)], abs=1e-12), key
        assert summary.metrics[key]["AP50"] == pytest.approx(1.0, abs=1e-12)
        assert summary.metrics[key]["APm"] == -1.0  # area 121: no medium or large GT


def test_modes_and_protocols_disagree_on_golden(template):
    """On the noisy golden case every mode gives its own AP, and so does each protocol."""
    s19 = dpeval.score(
        GOLDEN / "preds.json",
        GOLDEN / "gt.json",
        template=template,
        metrics=["gps", "gpsm", "iou"],
        workers=1,
    )
    d2 = dpeval.score(
        GOLDEN / "preds.json",
        GOLDEN / "gt.json",
        template=template,
        metrics=["gpsm", "iou"],
        protocol="detectron2",
        workers=1,
    )
    aps = [s19.metrics[k]["AP"] for k in ("gps_paper", "gps_perpart", "gpsm", "iou")]
    assert len({round(a, 6) for a in aps}) == 4
    assert abs(d2.metrics["iou"]["AP"] - s19.metrics["iou"]["AP"]) > 1e-4  # mask rules
