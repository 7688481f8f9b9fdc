"""GT and detection masks for GPSm / IoU: resize rules and IoU, against slow references."""

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


def naive_resize(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """OpenCV INTER_LINEAR (half-pixel centres, clamped borders), pixel by pixel."""
    h, w = src.shape

    def coord(i, n_out, n_in):
        f = (i + 0.5) * (1.0 / (n_out / n_in)) - 0.5  # OpenCV: scale = 1 / inv_scale
        i0 = int(np.floor(f))
        a = f - i0  # double weights (OpenCV's path for float64 input)
        if i0 < 0:
            i0, a = 0, 0.0
        if i0 >= n_in - 1:
            i0, a = n_in - 1, 0.0
        return i0, min(i0 + 1, n_in - 1), a

    out = np.zeros((out_h, out_w))
    for r in range(out_h):
        r0, r1, wr = coord(r, out_h, h)
        for c in range(out_w):
            c0, c1, wc = coord(c, out_w, w)
            top = src[r0, c0] * (1 - wc) + src[r0, c1] * wc
            bot = src[r1, c0] * (1 - wc) + src[r1, c1] * wc
            out[r, c] = top * (1 - wr) + bot * wr
    return out


@pytest.mark.parametrize("shape", [(7, 5), (31, 17), (3, 40)])
def test_resize_equals_pixel_by_pixel_reference(shape):
    rng = np.random.default_rng(shape[0])
    src = rng.integers(0, 15, (12, 9)).astype(float)
    np.testing.assert_array_equal(resize_linear_halfpixel(src, *shape), naive_resize(src, *shape))


def test_resize_kernel_equals_its_numpy_twin_bit_for_bit():
    """The Numba threshold kernel must give the NumPy resize's pixels exactly, also on
    values that land within 1e-13 of the threshold (label maps of overlapping parts)."""
    from dpeval.evaluation import _kernels, _reference

    rng = np.random.default_rng(7)
    for t in range(300):
        src = np.zeros((256, 256))
        for k in range(1, 15):
            y0, x0 = rng.integers(0, 200, 2)
            src[y0 : y0 + rng.integers(3, 90), x0 : x0 + rng.integers(3, 90)] = k
        if t % 4 == 0:
            src = rng.random((256, 256)) * 24
        h, w = (int(v) for v in rng.integers(1, 500, 2))
        for thr in (0.5, 7.25):
            np.testing.assert_array_equal(
                _kernels.resize_above(src, h, w, thr), _reference.resize_above(src, h, w, thr)
            )


def rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def test_gt_mask_label_aura_in_challenge_protocol_only():
    """The 2019 rule interpolates label values: head (14) next to background spreads
    further than torso (1); detectron2 binarises first, so both spread alike."""
    head = np.zeros((256, 256), bool)
    head[:, :128] = True
    torso = head.copy()
    masks_head = [[]] * 13 + [rle(head)]
    masks_torso = [rle(torso)] + [[]] * 13
    box = np.array([0.0, 0.0, 300.0, 300.0])  # upscaling samples across the border
    h14 = gt_mask(box, tuple(masks_head), None, 400, 400, "challenge2019")
    h1 = gt_mask(box, tuple(masks_torso), None, 400, 400, "challenge2019")
    assert h14.area > h1.area  # the "aura" of high labels
    d14 = gt_mask(box, tuple(masks_head), None, 400, 400, "detectron2")
    d1 = gt_mask(box, tuple(masks_torso), None, 400, 400, "detectron2")
    assert d14.area == d1.area


def test_gt_mask_full_grid_fills_the_box_and_clips_to_image():
    full = [rle(np.ones((256, 256), bool))] + [[]] * 13
    m = gt_mask(np.array([90.0, 10.5, 30.0, 20.0]), tuple(full), None, 100, 100, "challenge2019")
    assert (m.x0, m.y0) == (90, 10) and m.mask.shape == (20, 10) and m.area == 200
    assert gt_mask(np.array([0, 0, 30, 20.0]), None, None, 100, 100, "challenge2019").area == 0


def test_detectron2_falls_back_to_segmentation():
    poly = [[10, 10, 30, 10, 30, 20, 10, 20]]
    m = gt_mask(np.array([10, 10, 20, 10.0]), None, poly, 100, 100, "detectron2")
    full = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 100, 100)))
    assert m.area == int(full.sum()) > 0
    assert gt_mask(np.array([10, 10, 20, 10.0]), None, poly, 100, 100, "challenge2019").area == 0


def test_mask_iou_hand_computed_and_crowd():
    a = BoxMask(0, 0, np.ones((10, 10), bool), 100)
    b = BoxMask(5, 0, np.ones((10, 10), bool), 100)
    assert mask_iou(a, b, crowd=False) == pytest.approx(50 / 150)
    assert mask_iou(a, b, crowd=True) == pytest.approx(50 / 100)  # inter / dt area
    assert mask_iou(a, BoxMask.empty(), crowd=False) == 0.0
    assert mask_iou(BoxMask.empty(), BoxMask.empty(), crowd=False) == 0.0


def test_detection_mask_uses_int_box_and_foreground():
    iuv = np.zeros((3, 12, 12), np.uint8)
    iuv[0, 2:5, 3:9] = 7
    m = detection_mask(iuv, np.array([4.7, 1.2, 10.9, 10.9]), 50, 50)
    assert (m.x0, m.y0) == (4, 1) and m.mask.shape == (10, 10) and m.area == 18
