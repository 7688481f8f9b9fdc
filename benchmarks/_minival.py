"""A COCO-minival-sized synthetic DensePose case on the open template (benchmarks only).

1,500 images (640x480), about 2,300 annotated people with ~125 points each (plus a few
people without dense points), and per image up to 20 detections: one per annotated
person (box jittered, IUV agreeing with the GT up to chart noise) and false positives.
Each detection's IUV map has box size, an elliptic silhouette with Voronoi part blobs,
and the GT's (I, U, V) with noise at the annotated points.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dpeval.formats import encode_iuv


def _blob_iuv(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fg = ((yy - h / 2) / (0.48 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2 < 1.0
    k = 10
    sy = rng.uniform(0, h, k).astype(np.float32)
    sx = rng.uniform(0, w, k).astype(np.float32)
    parts = rng.choice(np.arange(1, 25), k, replace=False).astype(np.uint8)
    lab = np.argmin((yy[None] - sy[:, None, None]) ** 2 + (xx[None] - sx[:, None, None]) ** 2, 0)
    iuv = np.zeros((3, h, w), dtype=np.uint8)
    iuv[0] = np.where(fg, parts[lab], 0)
    iuv[1] = np.where(fg, (xx / max(w - 1, 1) * 255).astype(np.uint8), 0)
    iuv[2] = np.where(fg, (yy / max(h - 1, 1) * 255).astype(np.uint8), 0)
    return iuv


def _ellipse_masks() -> list:
    """14 DensePose part masks on the 256x256 box grid: an elliptic silhouette split into
    torso (1), head (14) and legs (6, 7) by height."""
    from pycocotools import mask as mask_utils

    yy, xx = np.mgrid[0:256, 0:256]
    fg = ((yy - 128) / (0.48 * 256)) ** 2 + ((xx - 128) / (0.42 * 256)) ** 2 < 1.0
    labels = np.zeros((256, 256), dtype=np.uint8)
    labels[fg & (yy < 50)] = 14
    labels[fg & (yy >= 50) & (yy < 150)] = 1
    labels[fg & (yy >= 150) & (xx < 128)] = 6
    labels[fg & (yy >= 150) & (xx >= 128)] = 7
    out = []
    for k in range(1, 15):
        m = labels == k
        if not m.any():
            out.append([])
            continue
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append(rle)
    return out


def build(
    out_dir: Path,
    *,
    n_images: int = 1500,
    n_people: int = 2300,
    seed: int = 0,
    max_dets: int = 20,
    template=None,
) -> tuple[Path, Path]:
    """Write ``gt.json`` and ``preds.json`` (challenge format) into ``out_dir``."""
    from dpeval.template import load_template

    t = template or load_template("open")
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_path, pred_path = out_dir / "gt.json", out_dir / "preds.json"
    masks = _ellipse_masks()
    people_per_image = np.bincount(rng.integers(0, n_images, n_people), minlength=n_images)
    images, anns, preds = [], [], []
    ann_id = 1
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img:012d}.jpg"})
        boxes = []
        for _ in range(int(people_per_image[img - 1])):
            w, h = int(rng.integers(40, 260)), int(rng.integers(80, 400))
            x, y = float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h))
            n = int(rng.integers(100, 151))
            cv = rng.integers(0, t.n_chart_vertices, n)
            part = t.chart_part[cv].astype(int)
            u, v = t.chart_uv[cv, 0].astype(float), t.chart_uv[cv, 1].astype(float)
            dp_x, dp_y = rng.uniform(0, 255, n), rng.uniform(0, 255, n)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x, y, float(w), float(h)],
                    "area": float(w * h * 0.6),
                    "dp_x": dp_x.round(3).tolist(),
                    "dp_y": dp_y.round(3).tolist(),
                    "dp_I": part.tolist(),
                    "dp_U": u.round(6).tolist(),
                    "dp_V": v.round(6).tolist(),
                    "dp_masks": masks,
                }
            )
            boxes.append((x, y, w, h, dp_x, dp_y, part, u, v))
            ann_id += 1
        if rng.random() < 0.3:  # a person without dense annotation
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [1.0, 1.0, 50.0, 90.0],
                    "area": 3000.0,
                }
            )
            ann_id += 1
        n_fp = int(rng.integers(0, max_dets - len(boxes) + 1)) if len(boxes) < max_dets else 0
        for x, y, w, h, dp_x, dp_y, part, u, v in boxes:
            jx, jy = rng.normal(0, 0.04 * w), rng.normal(0, 0.04 * h)
            dw, dh = (
                int(max(8, w + rng.normal(0, 0.05 * w))),
                int(max(8, h + rng.normal(0, 0.05 * h))),
            )
            dx, dy = x + jx, y + jy
            iuv = _blob_iuv(rng, dh, dw)
            col = np.trunc(x + dp_x * w / 255 - dx).astype(int)
            row = np.trunc(y + dp_y * h / 255 - dy).astype(int)
            ok = (col >= 0) & (row >= 0) & (col < dw) & (row < dh) & (rng.random(len(col)) < 0.9)
            noise = rng.normal(0, 0.04, (2, ok.sum()))
            iuv[0, row[ok], col[ok]] = part[ok]
            iuv[1, row[ok], col[ok]] = (np.clip(u[ok] + noise[0], 0, 1) * 255).astype(np.uint8)
            iuv[2, row[ok], col[ok]] = (np.clip(v[ok] + noise[1], 0, 1) * 255).astype(np.uint8)
            preds.append((img, [dx, dy, float(dw), float(dh)], float(rng.uniform(0.5, 1)), iuv))
        for _ in range(n_fp):
            dw, dh = int(rng.integers(20, 200)), int(rng.integers(40, 300))
            dx, dy = float(rng.uniform(0, 640 - dw)), float(rng.uniform(0, 480 - dh))
            preds.append(
                (
                    img,
                    [dx, dy, float(dw), float(dh)],
                    float(rng.uniform(0, 0.7)),
                    _blob_iuv(rng, dh, dw),
                )
            )
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    gt_path.write_text(json.dumps(gt, separators=(",", ":")))
    records = [
        {
            "image_id": img,
            "category_id": 1,
            "bbox": b,
            "score": s,
            "uv_shape": list(iuv.shape),
            "uv_data": encode_iuv(iuv, compress_level=1),
        }
        for img, b, s, iuv in preds
    ]
    tmp = pred_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, separators=(",", ":")))
    os.replace(tmp, pred_path)
    return gt_path, pred_path


def cached_case(n_images: int = 1500, n_people: int = 2300) -> Path:
    """The case directory under ``benchmarks/.cache/``, built on first use."""
    import time

    case = Path(__file__).resolve().parent / ".cache" / f"minival_{n_images}_{n_people}"
    if not (case / "preds.json").is_file():
        t = time.perf_counter()
        build(case, n_images=n_images, n_people=n_people)
        print(f"built the case in {time.perf_counter() - t:.1f} s -> {case}")
    return case
