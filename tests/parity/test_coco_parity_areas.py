"""dpeval's matching + accumulation against pycocotools for every area range and maxDets.

pycocotools' bbox evaluation is the independent reference; the two DensePose rules it
lacks are added to *its* state, written out here from the spec (§4), not taken from dpeval:

- images whose GTs are all ignored for an area range (or that have no GT) produce no false
  positives: their detections are left out of pycocotools' input for that range (for
  precision and recall, leaving out and ignoring are the same);
- the box fallback: after pycocotools matched, each detection unmatched at the last
  threshold takes, among GTs unmatched there (crowds allowed), the one with the largest
  box IoU >= 0.8; its ignore flag goes to the detection at every threshold, and a match
  to an ignored GT is recorded at the last threshold; then unmatched detections out of
  the area range are ignored again, as pycocotools does.

Similarity = box IoU, so both sides see the same numbers; ignored GT = crowd, as
DensePose's "no dp_x" GTs in pycocotools terms.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io

import numpy as np
import pytest

from dpeval.evaluation.accumulate import accumulate
from dpeval.evaluation.boxes import box_iou
from dpeval.evaluation.match import Matches, match_image
from dpeval.params import EvalParams

AREAS = EvalParams().area_ranges


def dataset(seed: int, n_images: int = 36):
    """GTs of every size (small ones too), crowds, all-crowd images, images without GT,
    detections on crowds (the fallback) and far false positives; coarse scores (ties)."""
    rng = np.random.default_rng(seed)
    images, gts, dts = [], [], []
    ann_id = 1
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img}.jpg"})
        kind = rng.random()
        n_gt = 0 if kind < 0.1 else int(rng.integers(1, 5))
        boxes = []
        for k in range(n_gt):
            side = rng.choice([rng.uniform(8, 30), rng.uniform(35, 95), rng.uniform(100, 220)])
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            crowd = int(kind < 0.25 or (k > 0 and rng.random() < 0.25))  # 0.1-0.25: all crowd
            area = float(w * h * rng.uniform(0.5, 1.0))
            gts.append(
                {
                    "id": ann_id,
                    "image_id": img,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": area,
                    "iscrowd": crowd,
                }
            )
            ann_id += 1
            boxes.append((x, y, w, h))
        for _ in range(int(rng.integers(0, 26))):
            if boxes and rng.random() < 0.8:
                x, y, w, h = boxes[rng.integers(len(boxes))]
                jit = rng.normal(0, rng.choice([0.02, 0.12]), 4) * np.array([w, h, w, h])
                box = [x + jit[0], y + jit[1], max(2.0, w + jit[2]), max(2.0, h + jit[3])]
            else:
                box = [*rng.uniform(0, 400, 2), *rng.uniform(5, 200, 2)]
            score = float(np.round(rng.random(), 1))
            dts.append({"image_id": img, "category_id": 1, "bbox": box, "score": score})
    return images, gts, dts


def ours(images, gts, dts, params):
    matches = {}
    for im in images:
        g = [a for a in gts if a["image_id"] == im["id"]]
        d = [a for a in dts if a["image_id"] == im["id"]]
        order = np.argsort([-x["score"] for x in d], kind="mergesort")[: params.max_dets]
        d = [d[i] for i in order]
        gb = np.array([a["bbox"] for a in g]).reshape(-1, 4)
        db = np.array([a["bbox"] for a in d]).reshape(-1, 4)
        crowd = np.array([a["iscrowd"] for a in g], dtype=bool)
        sim = box_iou(db, gb, crowd)
        for a, (_, lo, hi) in enumerate(params.area_ranges):
            matches[(im["id"], 1, a)] = match_image(
                sim,
                sim,  # box fallback on
                crowd,
                crowd,
                np.array([x["area"] for x in g]),
                db[:, 2] * db[:, 3],
                np.array([x["score"] for x in d]),
                (lo, hi),
                params.iou_thrs,
            )
    ids = tuple(im["id"] for im in images)
    return dataclasses.asdict(accumulate(Matches(matches, ids, (1,)), params))


def _box_fallback(ev, dts_area: dict[int, float]) -> None:
    """The DensePose uv box fallback applied to pycocotools' per-image results."""
    last = len(ev.params.iouThrs) - 1
    for e in ev.evalImgs:
        if e is None or not len(e["dtIds"]):
            continue
        gt = ev._gts[e["image_id"], e["category_id"]]
        cols = {g["id"]: j for j, g in enumerate(gt)}
        ious = np.asarray(ev.ious[e["image_id"], e["category_id"]])
        if ious.size == 0:
            continue
        iou = ious[:, [cols[i] for i in e["gtIds"]]]  # GT in evaluateImg's sorted order
        crowd = np.array([gt[cols[i]]["iscrowd"] for i in e["gtIds"]], dtype=bool)
        dtm, gtm, dtig, gtig = e["dtMatches"], e["gtMatches"], e["dtIgnore"], e["gtIgnore"]
        for d in range(len(e["dtIds"])):
            if dtm[last, d] > 0:
                continue
            best, m = 0.8, -1
            for g in range(len(e["gtIds"])):
                if gtm[last, g] > 0 and not crowd[g]:
                    continue
                if iou[d, g] < best:
                    continue
                best, m = iou[d, g], g
            if m < 0:
                continue
            dtig[:, d] = bool(gtig[m])
            if gtig[m]:
                dtm[last, d] = e["gtIds"][m]
                gtm[last, m] = e["dtIds"][d]
        lo, hi = e["aRng"]
        out = np.array([not (lo <= dts_area[i] <= hi) for i in e["dtIds"]])
        e["dtIgnore"] = np.logical_or(dtig, (dtm == 0) & out[None, :])


def theirs(images, gts, dts, params, area_index: int):
    """pycocotools for one area range, with the two DensePose rules added."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    name, lo, hi = params.area_ranges[area_index]
    regular = {
        a["image_id"] for a in gts if not a["iscrowd"] and lo <= a["area"] <= hi
    }  # images with a GT that is not ignored in this range
    keep = [dict(d) for d in dts if d["image_id"] in regular]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": copy.deepcopy(gts),
            "categories": [{"id": 1, "name": "person"}],
        }
        coco.createIndex()
        if not keep:
            return None
        res = coco.loadRes(keep)
        ev = COCOeval(coco, res, "bbox")
        ev.params.maxDets = [params.max_dets]
        ev.params.areaRng = [[lo, hi]]
        ev.params.areaRngLbl = [name]
        ev.evaluate()
        _box_fallback(ev, {d["id"]: d["area"] for d in res.dataset["annotations"]})
        ev.accumulate()
    return ev.eval


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_dets", [1, 5, 20])
def test_every_area_range_and_max_dets_equal_pycocotools_with_densepose_rules(seed, max_dets):
    images, gts, dts = dataset(seed)
    params = EvalParams(max_dets=max_dets)
    a = ours(images, gts, dts, params)
    for k in range(len(AREAS)):
        b = theirs(images, gts, dts, params, k)
        if b is None:
            assert np.all(a["precision"][..., k, :] <= 0)
            continue
        np.testing.assert_array_equal(a["precision"][..., k, :], b["precision"][..., 0, :])
        np.testing.assert_array_equal(a["recall"][..., k, :], b["recall"][..., 0, :])
    # a non-trivial case in every range
    assert all(0.02 < a["precision"][0, :, 0, k, 0].mean() < 0.99 for k in range(len(AREAS)))


def test_the_densepose_rules_matter_here():
    """Without the two rules the reference differs: the test data exercises both."""
    images, gts, dts = dataset(0)
    params = EvalParams()
    a = ours(images, gts, dts, params)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": copy.deepcopy(gts),
            "categories": [{"id": 1, "name": "person"}],
        }
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes([dict(d) for d in dts]), "bbox")
        ev.params.maxDets = [20]
        ev.params.areaRng = [[lo, hi] for _, lo, hi in AREAS]
        ev.evaluate()
        ev.accumulate()
    for k in range(len(AREAS)):
        assert not np.array_equal(a["precision"][..., k, :], ev.eval["precision"][..., k, :])
