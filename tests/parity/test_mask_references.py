"""GT/detection masks and mask IoU against independent implementations.

- 2019 rule: OpenCV's own ``cv2.resize`` (INTER_LINEAR) of the 256x256 label map, > 0.5,
  pasted at the integer box corner on a full image, exactly as the official
  ``computeDPIoU`` does (spec §3).
- detectron2 rule: a NumPy corner-aligned bilinear zoom written here from the rule's
  definition (output i samples input ``i * (n_in - 1) / (n_out - 1)``, what
  ``scipy.ndimage.zoom(order=1, prefilter=False)`` computes), on the binarised map.
- ``mask_iou``: pycocotools ``maskUtils.iou`` on full-image RLEs, crowd flag included.
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dpeval.evaluation.masks import (
    BoxMask,
    detection_mask,
    gt_mask,
    mask_iou,
    resize_linear_halfpixel,
)

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is in the test extra")

H, W = 120, 160


def rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def random_dp_masks(rng) -> tuple:
    """14 part masks of random ellipses on the 256 grid (some parts empty, overlapping)."""
    yy, xx = np.mgrid[:256, :256]
    out = []
    for _ in range(14):
        if rng.random() < 0.3:
            out.append([])
            continue
        cx, cy = rng.uniform(20, 236, 2)
        ax, ay = rng.uniform(8, 90, 2)
        out.append(rle(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1))
    return tuple(out)


def label_map(dp_masks) -> np.ndarray:
    m = np.zeros((256, 256))
    for k in range(1, 15):
        if dp_masks[k - 1]:
            m[mask_utils.decode(dp_masks[k - 1]) > 0] = k
    return m


def paste(mask: np.ndarray, bbox, x_stop=None, y_stop=None) -> np.ndarray:
    """Full-image mask, pasted at (int(x), int(y)) and clipped to the image."""
    x, y = int(bbox[0]), int(bbox[1])
    full = np.zeros((H, W), np.uint8)
    x1 = min(x + mask.shape[1], W if x_stop is None else min(x_stop, W))
    y1 = min(y + mask.shape[0], H if y_stop is None else min(y_stop, H))
    x0, y0 = max(x, 0), max(y, 0)
    if x1 > x0 and y1 > y0:
        full[y0:y1, x0:x1] = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    return full


def full(m: BoxMask) -> np.ndarray:
    out = np.zeros((H, W), np.uint8)
    if m.area:
        out[m.y0 : m.y0 + m.mask.shape[0], m.x0 : m.x0 + m.mask.shape[1]] = m.mask
    return out


def random_box(rng):
    w, h = rng.uniform(1.5, 140), rng.uniform(1.5, 110)
    return np.array([rng.uniform(-30, W - 10), rng.uniform(-30, H - 10), w, h])


@pytest.mark.parametrize("seed", range(4))
def test_resize_equals_cv2(seed):
    rng = np.random.default_rng(seed)
    src = label_map(random_dp_masks(rng))
    for _ in range(25):
        out_w, out_h = (int(t) for t in rng.integers(1, 600, 2))
        ours = resize_linear_halfpixel(src, out_h, out_w)
        ref = cv2.resize(src, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ours > 0.5, ref > 0.5)


def test_resize_threshold_case_of_the_golden_file():
    """A pixel OpenCV puts at 0.49999999999997 (float32 weights gave 0.5000001)."""
    src = np.zeros((256, 256))
    src[:, :128] = 1.0
    rng = np.random.default_rng(3)
    for out_w in range(1, 300):
        out_h = int(rng.integers(1, 300))
        np.testing.assert_array_equal(
            resize_linear_halfpixel(src, out_h, out_w) > 0.5, cv2.resize(src, (out_w, out_h)) > 0.5
        )


@pytest.mark.parametrize("seed", range(3))
def test_challenge2019_gt_mask_equals_official_pipeline(seed):
    rng = np.random.default_rng(10 + seed)
    for _ in range(15):
        dp = random_dp_masks(rng)
        box = random_box(rng)
        iw, ih = max(int(box[2]), 1), max(int(box[3]), 1)
        ref_mask = (cv2.resize(label_map(dp), (iw, ih)) > 0.5).astype(np.uint8)
        ref = paste(ref_mask, box)
        ours = full(gt_mask(box, dp, None, H, W, "challenge2019"))
        np.testing.assert_array_equal(ours, ref)


def corner_aligned_zoom(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear interpolation with corner-aligned grids: output i at input i*(n-1)/(m-1).

    As in scipy's ``mode="constant"``, a sample whose position rounds to just beyond the
    last input pixel (``i * ((n - 1) / (m - 1)) > n - 1`` in double) is outside the input
    and gets 0: detectron2's GT masks can lose their last row or column that way.
    """

    def axis(n_out, n_in):
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
        i0 = np.minimum(np.floor(pos).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, pos - i0, pos > n_in - 1

    r0, r1, fr, r_out = axis(out_h, src.shape[0])
    c0, c1, fc, c_out = axis(out_w, src.shape[1])
    rows = src[r0] * (1 - fr)[:, None] + src[r1] * fr[:, None]
    out = rows[:, c0] * (1 - fc) + rows[:, c1] * fc
    out[r_out, :] = 0.0
    out[:, c_out] = 0.0
    return out


@pytest.mark.parametrize("seed", range(3))
def test_detectron2_gt_mask_equals_corner_aligned_zoom(seed):
    rng = np.random.default_rng(20 + seed)
    checked = 0
    for _ in range(15):
        dp = random_dp_masks(rng)
        box = random_box(rng)
        x, y, w, h = box
        out_h, out_w = round(256 * max(h, 1) / 256), round(256 * max(w, 1) / 256)
        z = corner_aligned_zoom(np.minimum(label_map(dp), 1.0), out_h, out_w)
        stops = {"x_stop": int(x + w), "y_stop": int(y + h)}
        ref = paste((z > 0.5).astype(np.uint8), box, **stops)
        # exact 0.5 ties (a sample midway between 0 and 1): the last bit decides, not the rule
        tie = paste((np.abs(z - 0.5) < 1e-9).astype(np.uint8), box, **stops).astype(bool)
        ours = full(gt_mask(box, dp, None, H, W, "detectron2"))
        np.testing.assert_array_equal(ours[~tie], ref[~tie])
        checked += int(ref.sum() > 0)
    assert checked >= 8


def test_protocols_give_different_gt_masks():
    """The 2019 rule interpolates labels (head = 14 spreads), detectron2 binarises."""
    dp = [[] for _ in range(14)]
    m = np.zeros((256, 256), bool)
    m[64:192, 64:192] = True
    dp[13] = rle(m)  # head only
    box = np.array([0.0, 0.0, 150.0, 110.0])
    a = full(gt_mask(box, tuple(dp), None, H, W, "challenge2019")).sum()
    b = full(gt_mask(box, tuple(dp), None, H, W, "detectron2")).sum()
    assert a > b > 0


@pytest.mark.parametrize("seed", range(3))
def test_mask_iou_equals_pycocotools(seed):
    rng = np.random.default_rng(30 + seed)
    for _ in range(40):
        dp = random_dp_masks(rng)
        g = gt_mask(random_box(rng), dp, None, H, W, "challenge2019")
        dbox = random_box(rng)
        iuv = np.zeros((3, int(dbox[3]) + 2, int(dbox[2]) + 2), np.uint8)
        iuv[0] = rng.random(iuv.shape[1:]) < rng.uniform(0.05, 0.95)
        d = detection_mask(iuv, dbox, H, W)
        for crowd in (False, True):
            ref = mask_utils.iou(
                [mask_utils.encode(np.asfortranarray(full(d)))],
                [mask_utils.encode(np.asfortranarray(full(g)))],
                [int(crowd)],
            )
            assert mask_iou(d, g, crowd) == pytest.approx(float(np.asarray(ref)[0, 0]), abs=1e-15)


def test_detection_mask_uses_integer_box_and_clips():
    iuv = np.ones((3, 12, 12), np.uint8)
    m = full(detection_mask(iuv, np.array([-2.7, 3.9, 10.9, 5.2]), H, W))
    ref = np.zeros((H, W), np.uint8)
    ref[3:8, 0:8] = 1  # x0 = int(-2.7) = -2, w = int(10.9) = 10 -> columns -2..7
    np.testing.assert_array_equal(m, ref)
