"""Matching + accumulation equal pycocotools where the DensePose rules do not differ.

With box IoU as the similarity, no uv box fallback, and every image holding at least one
regular GT, DensePose's evaluateImg/accumulate reduce to pycocotools' bbox evaluation;
pycocotools is an independent implementation of that, so the precision/recall arrays
must agree exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np
import pytest

from dpeval.evaluation.accumulate import accumulate
from dpeval.evaluation.boxes import box_iou
from dpeval.evaluation.match import Matches, match_image
from dpeval.params import EvalParams


def random_dataset(seed: int, n_images: int = 40):
    rng = np.random.default_rng(seed)
    images, gts, dts = [], [], []
    ann_id = 1
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img}.jpg"})
        n_gt = rng.integers(1, 5)
        boxes = []
        for k in range(n_gt):
            w, h = rng.uniform(10, 200, 2)
            x, y = rng.uniform(0, 400), rng.uniform(0, 300)
            crowd = int(k > 0 and rng.random() < 0.15)
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
        for _ in range(rng.integers(0, 25)):
            x, y, w, h = boxes[rng.integers(len(boxes))]
            jit = rng.normal(0, 0.15, 4) * np.array([w, h, w, h])
            if rng.random() < 0.2:
                jit = rng.uniform(-150, 150, 4)
            box = [x + jit[0], y + jit[1], max(2.0, w + jit[2]), max(2.0, h + jit[3])]
            score = float(np.round(rng.random(), 1))  # coarse scores: many ties
            dts.append({"image_id": img, "category_id": 1, "bbox": box, "score": score})
    return images, gts, dts


def ours(images, gts, dts, params):
    thr = params.iou_thrs
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
                None,
                crowd,
                crowd,
                np.array([x["area"] for x in g]),
                db[:, 2] * db[:, 3],
                np.array([x["score"] for x in d]),
                (lo, hi),
                thr,
            )
    ids = tuple(im["id"] for im in images)
    return dataclasses.asdict(accumulate(Matches(matches, ids, (1,)), params))


def theirs(images, gts, dts, params):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": gts,
            "categories": [{"id": 1, "name": "person"}],
        }
        coco.createIndex()
        res = coco.loadRes([dict(d) for d in dts]) if dts else None
        ev = COCOeval(coco, res, "bbox")
        ev.params.maxDets = [params.max_dets]
        ev.params.areaRng = [[lo, hi] for _, lo, hi in params.area_ranges]
        ev.params.areaRngLbl = [n for n, _, _ in params.area_ranges]
        ev.evaluate()
        ev.accumulate()
    return ev.eval


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_precision_recall_equal_pycocotools_on_all_area(seed):
    images, gts, dts = random_dataset(seed)
    params = EvalParams()
    a = ours(images, gts, dts, params)
    b = theirs(images, gts, dts, params)
    # area 'all': every image has a regular GT, so DensePose's all-ignored rule is inert
    np.testing.assert_array_equal(a["precision"][..., 0, :], b["precision"][..., 0, :])
    np.testing.assert_array_equal(a["recall"][..., 0, :], b["recall"][..., 0, :])
    np.testing.assert_array_equal(a["scores"][..., 0, :], b["scores"][..., 0, :])
    assert 0.05 < a["precision"][0, :, 0, 0, 0].mean() < 0.99  # a non-trivial case
