"""Small synthetic DensePose cases with known answers (used by several test files).

``make_case`` builds a ground truth (COCO dict) on a template and a *perfect* prediction:
each annotated person gets a detection with its exact box whose IUV map is foreground
over the whole box and holds the person's exact (I, U*255, V*255) at every annotated
point. GT U/V are multiples of 1/255 so quantisation loses nothing, and the only GT
mask (torso) covers the whole 256x256 grid so GT and predicted masks coincide.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from dpeval.formats.model import Detection, GroundTruth, GtPerson, ImageInfo, Predictions


def full_masks() -> list:
    rle = mask_utils.encode(np.asfortranarray(np.ones((256, 256), dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return [rle] + [[] for _ in range(13)]


def make_case(seed: int = 0, n_images: int = 4, points: int = 60, template=None):
    """(gt_dict, detections as (image_id, bbox, score, iuv) tuples)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    ann_id = 1
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img:06d}.jpg"})
        for k in range(int(rng.integers(1, 4))):
            w, h = int(rng.integers(40, 200)), int(rng.integers(60, 260))
            x, y = int(rng.integers(0, 640 - w)), int(rng.integers(0, 480 - h))
            cells = rng.choice(w * h, size=points, replace=False)
            col, row = cells % w, cells // w
            dp_x = (col + 0.5) * 255.0 / w
            dp_y = (row + 0.5) * 255.0 / h
            part = rng.integers(1, 25, points)
            u8, v8 = rng.integers(0, 256, points), rng.integers(0, 256, points)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": float(w * h),
                    "iscrowd": 0,
                    "dp_x": dp_x.tolist(),
                    "dp_y": dp_y.tolist(),
                    "dp_I": part.astype(float).tolist(),
                    "dp_U": (u8 / 255.0).tolist(),
                    "dp_V": (v8 / 255.0).tolist(),
                    "dp_masks": full_masks(),
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "num_keypoints": 0,
                }
            )
            iuv = np.zeros((3, h, w), dtype=np.uint8)
            iuv[0] = 1
            iuv[0, row, col] = part
            iuv[1, row, col] = u8
            iuv[2, row, col] = v8
            dets.append((img, [float(x), float(y), float(w), float(h)], 0.5 + 0.1 * k, iuv))
            ann_id += 1
        # one person without dense annotation (ignored by the official rule)
        anns.append(
            {
                "id": ann_id,
                "image_id": img,
                "category_id": 1,
                "bbox": [5.0, 5.0, 30.0, 40.0],
                "area": 1200.0,
                "iscrowd": 0,
                "segmentation": [[5, 5, 35, 5, 35, 45, 5, 45]],
            }
        )
        ann_id += 1
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    return gt, dets


def _arr(a: dict, key: str):
    return np.asarray(a[key], dtype=np.float64) if key in a else None


def records(gt: dict, dets: list) -> tuple[GroundTruth, Predictions]:
    """The same case as dpeval records, without going through the file readers."""
    images = {
        im["id"]: ImageInfo(im["id"], im["height"], im["width"], im["file_name"])
        for im in gt["images"]
    }
    people = []
    for i, a in enumerate(gt["annotations"]):
        dense = "dp_x" in a
        people.append(
            GtPerson(
                id=a["id"],
                image_id=a["image_id"],
                category_id=a["category_id"],
                bbox=np.asarray(a["bbox"], dtype=np.float64),
                area=a["area"],
                iscrowd=bool(a["iscrowd"]),
                has_dense=dense,
                dp_x=_arr(a, "dp_x"),
                dp_y=_arr(a, "dp_y"),
                dp_I=None if not dense else np.asarray(a["dp_I"]).astype(np.int64),
                dp_U=_arr(a, "dp_U"),
                dp_V=_arr(a, "dp_V"),
                dp_masks=tuple(m or None for m in a["dp_masks"]) if dense else None,
                segmentation=a.get("segmentation"),
                index=i,
            )
        )
    detections = tuple(
        Detection(
            image_id=img,
            category_id=1,
            bbox=np.asarray(b, dtype=np.float64),
            score=s,
            iuv_shape=iuv.shape,
            index=i,
            _iuv=iuv,
        )
        for i, (img, b, s, iuv) in enumerate(dets)
    )
    return (
        GroundTruth(images=images, annotations=tuple(people)),
        Predictions("instances", detections=detections, format="memory"),
    )


class EuclideanSolver:
    """Stand-in geodesic solver: straight-line distance between template vertices."""

    def __init__(self, template) -> None:
        self.v = np.asarray(template.vertices, dtype=np.float64)
        self.calls = 0

    def pairs(self, a, b):
        self.calls += 1
        return np.linalg.norm(self.v[np.asarray(a)] - self.v[np.asarray(b)], axis=1)
