"""PoseTrack ignore regions, rule by rule, on cases built by hand (spec §4 "Prepare").

The recorded official numbers (``tests/parity/test_official_golden.py``, posetrack case)
pin the 2019 box rule on real-looking data; here each branch is isolated: the 70 % box
share, zero-area boxes, empty crops, Python's negative slicing, and detectron2's UV rule
(>= 90 % of the detection's foreground inside), which differs from the box rule.
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dpeval.evaluation.regions import ignore_region_mask, keep_box, keep_detection, region_filter
from dpeval.formats import load_ground_truth
from dpeval.formats.model import Detection, ImageInfo, Predictions

H, W = 40, 60


def right_half_region() -> np.ndarray:
    r = np.zeros((H, W), np.uint8)
    r[:, 30:] = 1
    return r


def test_mask_is_pycocotools_rasterisation_of_interleaved_polygons():
    xs = [[10.0, 30.0, 30.0, 10.0], [40.0, 55.0, 47.5]]
    ys = [[5.0, 5.0, 25.0, 25.0], [30.0, 30.0, 38.0]]
    info = ImageInfo(
        1, H, W, ignore_regions=tuple(np.c_[x, y] for x, y in zip(xs, ys, strict=True))
    )
    polys = [[v for xy in zip(x, y, strict=True) for v in xy] for x, y in zip(xs, ys, strict=True)]
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, H, W)))
    np.testing.assert_array_equal(ignore_region_mask(info), ref)
    assert ignore_region_mask(ImageInfo(1, H, W)) is None


def left_half_region() -> np.ndarray:
    r = np.zeros((H, W), np.uint8)
    r[:, :30] = 1
    return r


@pytest.mark.parametrize(
    ("box", "region", "kept"),
    [
        ([20.0, 0.0, 20.0, 10.0], "right", True),  # columns 20-39: 10/20 = 0.5 inside
        ([26.0, 0.0, 20.0, 10.0], "right", False),  # 16/20 = 0.8
        ([27.0, 0.0, 10.0, 10.0], "right", False),  # 7/10 = 0.7 exactly: >= 0.7 drops
        ([26.0, 0.0, 10.0, 10.0], "right", True),  # columns 26-35: 6/10 = 0.6 < 0.7
        ([29.9, 0.0, 10.0, 10.0], "right", False),  # int(29.9) = 29: 9/10 inside
        ([0.0, 0.0, 20.0, 10.0], "right", True),  # nothing inside
        ([35.0, 5.0, 0.9, 10.0], "right", False),  # int(0.9) = 0: zero area
        ([5.0, 5.0, 10.0, 0.0], "right", False),  # zero area, even outside the region
        # x1 = int(-5.5) = -5, x2 = 15: region[:, -5:15] is empty in Python, so the box is
        # kept although 15/20 of it lies in the region (the official code's slicing)
        ([-5.5, 0.0, 20.0, 10.0], "left", True),
        ([0.0, 0.0, 20.0, 10.0], "left", False),  # the same box moved in: 20/20
    ],
)
def test_box_rule(box, region, kept):
    mask = right_half_region() if region == "right" else left_half_region()
    assert keep_box(np.array(box), mask) is kept


def test_no_region_keeps_everything():
    assert keep_box(np.array([0.0, 0.0, 0.0, 0.0]), None)


def _det(box, fg_cols):
    w, h = int(box[2]), int(box[3])
    iuv = np.zeros((3, h, w), np.uint8)
    iuv[0][:, fg_cols] = 3
    return Detection(1, 1, np.array(box, float), 0.9, iuv.shape, 0, _iuv=iuv)


def test_protocols_differ_on_detections():
    """A box half inside the region (box rule keeps it) whose foreground lies entirely in
    the inside half (UV rule drops it, 100 % >= 90 %)."""
    region = right_half_region()
    det = _det([20.0, 0.0, 20.0, 10.0], slice(10, 20))
    assert keep_detection(det, region, "challenge2019") is True
    assert keep_detection(det, region, "detectron2") is False
    # foreground 8/10 inside: 0.8 < 0.9, kept by detectron2
    assert keep_detection(_det([20.0, 0.0, 20.0, 10.0], slice(8, 18)), region, "detectron2")
    # box 80 % inside (2019 drops it) but foreground outside (detectron2 keeps it)
    det = _det([26.0, 0.0, 20.0, 10.0], slice(0, 4))
    assert keep_detection(det, region, "challenge2019") is False
    assert keep_detection(det, region, "detectron2") is True
    # no foreground at all: kept by the UV rule; zero area: dropped by both
    assert keep_detection(_det([30.0, 0.0, 10.0, 10.0], slice(0, 0)), region, "detectron2")
    assert not keep_detection(_det([30.0, 0.0, 0.5, 10.0], slice(0, 0)), region, "detectron2")


def test_region_filter_drops_gts_and_detections_per_image():
    gt = load_ground_truth(
        {
            "images": [
                {
                    "id": 1,
                    "width": W,
                    "height": H,
                    "ignore_regions_x": [[30.0, 60.0, 60.0, 30.0]],
                    "ignore_regions_y": [[0.0, 0.0, 40.0, 40.0]],
                },
                {"id": 2, "width": W, "height": H},
            ],
            "categories": [{"id": 1, "name": "person"}],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 1,
                    "bbox": [35, 5, 10, 10],
                    "area": 100,
                    "iscrowd": 0,
                },
                {
                    "id": 2,
                    "image_id": 1,
                    "category_id": 1,
                    "bbox": [2, 5, 10, 10],
                    "area": 100,
                    "iscrowd": 0,
                },
                {
                    "id": 3,
                    "image_id": 2,
                    "category_id": 1,
                    "bbox": [35, 5, 10, 10],
                    "area": 100,
                    "iscrowd": 0,
                },
            ],
        }
    )
    dets = (
        _det([36.0, 5.0, 10.0, 10.0], slice(0, 10)),  # image 1, inside: dropped
        Detection(2, 1, np.array([36.0, 5.0, 10.0, 10.0]), 0.8, (3, 10, 10), 1),  # no region
    )
    keep_gt, keep_det = region_filter(
        gt, Predictions("instances", detections=dets), "challenge2019"
    )
    assert keep_gt.tolist() == [False, True, True]
    assert keep_det.tolist() == [False, True]
