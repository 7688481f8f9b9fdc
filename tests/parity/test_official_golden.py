"""dpeval against numbers the official 2019 evaluator computed (``tests/data/official_golden``).

``official.json`` was written by running DensePose's
``challenge/2019_COCO_DensePose/densepose_cocoeval.py`` itself (Python 3 shims only) on the
synthetic case beside it: a template in the official file layout, a ground truth with
ignored people, crowds, all-ignored images and every area range, and noisy challenge-format
predictions. ``posetrack/`` repeats it with PoseTrack image ignore regions. The numbers are
independent of dpeval's code and constants, so any drift in the kappa table, GPSm's
formula, the 2019 mask rule, the matching quirks or the accumulation fails here:

- the 18 ``stats`` of GPSm, GPS and IOU to 1e-12 (through ``dpeval.score`` and through the
  pycocotools-shaped ``DensePoseEval``);
- per image: the official detection order (stable score sort, top-20 cut, ignore regions),
  the GT list, and every entry of the GPS (per-part kappa), box-IoU and mask-IoU matrices.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import dpeval
from dpeval.evaluation import DensePoseEval
from dpeval.params import EvalParams
from dpeval.template import load_template

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "official_golden"
CASES = {"coco": GOLDEN, "posetrack": GOLDEN / "posetrack"}
MODES = {"GPSm": ("gpsm", "gpsm"), "GPS": ("gps_perpart", "gps"), "IOU": ("iou", "iou")}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    # a copy: the loader converts Pdist_matrix.mat to a .npy beside it, never in the repo
    assets = tmp_path_factory.mktemp("golden") / "assets"
    shutil.copytree(GOLDEN / "assets", assets)
    return load_template(assets)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, template):
    d = CASES[request.param]
    official = json.loads((d / "official.json").read_text())
    summary = dpeval.score(
        d / "preds.json",
        d / "gt.json",
        template=template,
        metrics=["gps", "gpsm", "iou"],
        workers=1,
    )
    ev = DensePoseEval(
        d / "gt.json", d / "preds.json", template=template, params=EvalParams(metric="gpsm")
    )
    ev.evaluate()
    return request.param, official, summary, ev


def test_official_layout_template_is_read(template):
    assert template.pdist is not None  # the HDF5 Pdist_matrix.mat, used as the legacy table
    assert template.n_vertices == 2114


@pytest.mark.parametrize("mode", sorted(MODES))
def test_stats_equal_official_through_score(case, mode):
    name, official, summary, _ = case
    assert official["stats_order"][0] == "AP" and len(official["stats_order"]) == 18
    got = np.asarray(summary.stats[MODES[mode][0]])
    want = np.asarray(official["modes"][mode])
    assert got.shape == (18,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"{name} {mode}")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_stats_equal_official_through_densepose_eval(case, template, mode):
    name, official, _, ev = case
    params = EvalParams(metric=MODES[mode][1])  # type: ignore[arg-type]
    other = DensePoseEval(
        ev.gt, ev.preds, template=template, params=params, similarities=ev.similarities
    )
    other.evaluate()
    other.accumulate()
    lines = other.summarize()
    assert len(lines) == 18
    np.testing.assert_allclose(
        other.stats, official["modes"][mode], rtol=0, atol=1e-12, err_msg=f"{name} {mode}"
    )


def test_detection_order_and_matrices_equal_official(case):
    name, official, _, ev = case
    sims = {s.image_id: s for s in ev.similarities.images}
    gt, preds = ev.gt, ev.preds
    n_entries = 0
    assert len(official["images"]) == len(gt.images)
    for image_id, rec in official["images"].items():
        s = sims.get(int(image_id))
        dt_ids = [] if s is None else [int(k) + 1 for k in s.det_index]  # 1-based file position
        gt_ids = [] if s is None else [gt.annotations[k].id for k in s.gt_index]
        assert dt_ids == rec["dt_ids"], f"{name} image {image_id}: detection order"
        assert gt_ids == rec["gt_ids"], f"{name} image {image_id}: GT list"
        if "gps" not in rec:  # the official code stores no matrix without GT or detection
            assert not dt_ids or not gt_ids
            continue
        for key, ours in (
            ("gps", s.gps_per_part),
            ("box_iou", s.box_iou),
            ("mask_iou", s.mask_iou),
        ):
            want = np.asarray(rec[key], dtype=np.float64)
            assert ours.shape == want.shape, f"{name} image {image_id}: {key} shape"
            np.testing.assert_allclose(
                ours, want, rtol=0, atol=1e-12, err_msg=f"{name} image {image_id}: {key}"
            )
            n_entries += want.size
        assert all(preds.detections[k].image_id == int(image_id) for k in s.det_index)
    assert n_entries > 1000  # the whole case, not a corner of it


def test_case_exercises_the_rules(case):
    """The fixture is only a strong reference if it hits the rules it is meant to pin."""
    name, official, _, ev = case
    gt = ev.gt
    anns = gt.annotations
    assert any(not a.has_dense for a in anns) and any(a.iscrowd for a in anns)
    areas = np.array([a.area for a in anns])
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas <= 96**2)).any()
    assert (areas > 96**2).any()
    cut = [r for r in official["images"].values() if len(r["dt_ids"]) == 20]
    modes = official["modes"]
    assert not np.allclose(modes["GPSm"], modes["GPS"]) and not np.allclose(
        modes["GPSm"], modes["IOU"]
    )
    if name == "posetrack":
        assert sum(1 for i in gt.images.values() if i.ignore_regions) > 10
    else:
        assert cut or max(len(r["dt_ids"]) for r in official["images"].values()) > 5
