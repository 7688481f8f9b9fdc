"""baselines.common.ops against the NumPy twins in baselines.common._reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.common import _reference as ref
from baselines.common import ops


@pytest.fixture(autouse=True)
def pure_ops():
    """Force the plain-torch / numba paths (torchvision is used only when it loads)."""
    previous = ops.set_use_torchvision(False)
    yield
    ops.set_use_torchvision(previous)


def _random_rois(rng, n, n_images, width, height, margin):
    rois = []
    for _ in range(n):
        x1, x2 = np.sort(rng.uniform(-margin, width + margin, 2))
        y1, y2 = np.sort(rng.uniform(-margin, height + margin, 2))
        rois.append([rng.integers(0, n_images), x1, y1, x2, y2])
    # corner cases: a point box, a box fully outside, a box on the border, a thin box
    rois += [
        [0, 10, 10, 10, 10],
        [n_images - 1, width + 30, height + 30, width + 60, height + 90],
        [0, -8, -8, 0.5, 0.5],
        [0, 3.0, 1.0, 3.2, height + 4.0],
    ]
    return torch.tensor(rois, dtype=torch.float64)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3, 0])
@pytest.mark.parametrize("output_size", [(7, 7), (5, 3)])
def test_roi_align_matches_cpp_kernel_transcription(aligned, sampling_ratio, output_size):
    rng = np.random.default_rng(17)
    feats = torch.from_numpy(rng.normal(size=(2, 3, 9, 12)))
    scale = 0.25  # image 48 x 36 px
    rois = _random_rois(rng, 40, 2, 48, 36, margin=16)
    got = ops.roi_align(feats, rois, output_size, scale, sampling_ratio, aligned)
    want = ref.roi_align(feats.numpy(), rois.numpy(), output_size, scale, sampling_ratio, aligned)
    assert got.shape == (len(rois), 3, *output_size)
    assert got.dtype == torch.float64
    assert np.abs(got.numpy() - want).max() < 1e-9


def test_roi_align_one_pixel_maps_and_float32():
    rng = np.random.default_rng(3)
    feats = torch.from_numpy(rng.normal(size=(1, 2, 1, 5)))
    rois = _random_rois(rng, 10, 1, 5, 1, margin=2)
    got = ops.roi_align(feats, rois, 2, 1.0, 2, True)
    want = ref.roi_align(feats.numpy(), rois.numpy(), (2, 2), 1.0, 2, True)
    assert np.abs(got.numpy() - want).max() < 1e-9
    got32 = ops.roi_align(feats.float(), rois.float(), 2, 1.0, 2, True)
    assert got32.dtype == torch.float32
    assert np.abs(got32.double().numpy() - want).max() < 1e-5


def test_roi_align_hand_computed():
    # a 4x4 ramp f(y, x) = x: bilinear sampling of a linear map returns the mean x
    feats = torch.arange(4.0).repeat(4, 1)[None, None]
    out = ops.roi_align(feats, torch.tensor([[0.0, 1.0, 0.0, 3.0, 4.0]]), 1, 1.0, 2, True)
    # aligned: box x in [0.5, 2.5] px, samples at 1.0 and 2.0 -> mean 1.5
    assert out.item() == pytest.approx(1.5)


def test_roi_align_empty_and_validation():
    feats = torch.zeros(1, 4, 8, 8)
    out = ops.roi_align(feats, torch.zeros(0, 5), (3, 2), 0.5)
    assert out.shape == (0, 4, 3, 2)
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        ops.roi_align(feats, torch.zeros(3, 4), 2, 1.0)
    with pytest.raises(ValueError, match="N, C, H, W"):
        ops.roi_align(feats[0], torch.zeros(0, 5), 2, 1.0)


def test_roi_align_gradcheck():
    rng = np.random.default_rng(5)
    feats = torch.from_numpy(rng.normal(size=(2, 2, 5, 6))).requires_grad_(True)
    rois = torch.tensor(
        [[0, 0.3, 0.7, 4.1, 3.3], [1, -1.5, 2.2, 7.7, 6.1], [1, 1.1, 1.2, 2.6, 2.9]],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(
        lambda f: ops.roi_align(f, rois, (2, 3), 1.0, 2, True), (feats,)
    )


def test_map_levels_hand_computed():
    # sqrt(area): 224 -> 4; 112 -> 3; 111.9 -> 2 (floor(4 + log2(0.4996)) = 2);
    # 448 -> 5; 1000 -> 5 (clamped); 10 -> 2 (clamped)
    sides = [224.0, 112.0, 111.9, 448.0, 1000.0, 10.0]
    rois = torch.tensor([[0, 5, 5, 5 + s, 5 + s] for s in sides], dtype=torch.float64)
    assert ops.map_levels(rois, 2, 5).tolist() == [4, 3, 2, 5, 5, 2]
    # non-square: 56 x 224 -> sqrt = 112 -> level 3
    assert ops.map_levels(torch.tensor([[0.0, 0, 0, 56, 224]]), 2, 5).tolist() == [3]


def test_multiscale_roi_align_picks_level_and_keeps_order():
    rng = np.random.default_rng(11)
    strides = (4, 8, 16, 32)
    feats = [torch.from_numpy(rng.normal(size=(2, 3, 512 // s, 512 // s))) for s in strides]
    rois = torch.tensor(
        [
            [1, 10, 10, 460, 470],  # ~455 px -> P5
            [0, 20, 30, 60, 70],  # 40 px -> P2
            [1, 100, 100, 330, 320],  # ~225 px -> P4
            [0, 5, 5, 125, 125],
        ],
        dtype=torch.float64,
    )  # 120 px -> P3
    out = ops.multiscale_roi_align(feats, rois, 7, strides, sampling_ratio=2)
    assert out.shape == (4, 3, 7, 7)
    for row, level in enumerate([5, 2, 4, 3]):
        k = level - 2
        want = ref.roi_align(
            feats[k].numpy(), rois[row : row + 1].numpy(), (7, 7), 1.0 / strides[k], 2, True
        )
        assert np.abs(out[row : row + 1].numpy() - want).max() < 1e-9
    assert ops.multiscale_roi_align(feats, torch.zeros(0, 5), 7).shape == (0, 3, 7, 7)


def test_box_iou():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = torch.tensor([[5.0, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    iou = ops.box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([50 / 150, 0.0, 1.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]


def _clustered_boxes(rng, n, n_clusters=12):
    centres = rng.uniform(0, 400, size=(n_clusters, 2))
    c = centres[rng.integers(0, n_clusters, n)] + rng.normal(0, 6, size=(n, 2))
    wh = rng.uniform(20, 60, size=(n, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_greedy_reference(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    boxes = _clustered_boxes(rng, 600)
    scores = rng.uniform(size=600)
    keep = ops.nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), threshold)
    assert keep.dtype == torch.long
    want = ref.nms(
        boxes.astype(np.float32).astype(np.float64),
        scores.astype(np.float32).astype(np.float64),
        threshold,
    )
    assert keep.tolist() == want.tolist()
    assert 0 < len(keep) < 600


def test_nms_ties_break_by_lower_index():
    rng = np.random.default_rng(2)
    boxes = _clustered_boxes(rng, 200, n_clusters=5)
    scores = rng.integers(0, 4, size=200).astype(np.float64)  # many exact ties
    keep = ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).tolist()
    assert keep == ref.nms(boxes, scores, 0.5).tolist()
    # two identical boxes with equal score: the first one is kept
    same = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert ops.nms(same, torch.tensor([1.0, 2.0, 2.0]), 0.5).tolist() == [1]


def test_nms_edge_cases():
    assert ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    degenerate = torch.tensor([[1.0, 1, 1, 1], [1.0, 1, 1, 1], [0, 0, 4, 4]])
    assert ops.nms(degenerate, torch.tensor([0.9, 0.8, 0.1]), 0.5).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="scores"):
        ops.nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


def test_batched_nms_keeps_categories_apart():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 0, 1, 1])
    assert ops.batched_nms(boxes, scores, idxs, 0.5).tolist() == [0, 2, 3]
    assert ops.nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert ops.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


@pytest.mark.skipif(not ops.torchvision_ops_available(), reason="torchvision ops not loaded")
def test_torchvision_fast_path_agrees():
    rng = np.random.default_rng(8)
    feats = torch.from_numpy(rng.normal(size=(2, 3, 9, 12)))
    rois = _random_rois(rng, 30, 2, 48, 36, margin=4)
    pure = ops.roi_align(feats, rois, 7, 0.25, 2, True)
    ops.set_use_torchvision(True)
    fast = ops.roi_align(feats, rois, 7, 0.25, 2, True)
    assert torch.allclose(pure, fast, atol=1e-9)
    assert math.isfinite(float(fast.sum()))
