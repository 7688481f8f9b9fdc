"""DensePose-RCNN pieces against hand-computed values and NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.rcnn.boxes import (
    DELTA_CLAMP,
    IGNORE,
    NEGATIVE,
    POSITIVE,
    BoxCoder,
    cell_anchors,
    clip_boxes,
    grid_anchors,
    ioa,
    match,
    sample,
)
from baselines.rcnn.config import RCNNConfig, full, get_config, tiny
from baselines.rcnn.heads import (
    DensePoseHead,
    coarse_targets,
    densepose_losses,
    iuv_from_outputs,
    point_targets,
    sample_at_points,
)
from baselines.rcnn.model import DensePoseRCNN, assign_proposals
from baselines.rcnn.rpn import RPN, assign_anchors

# --------------------------------------------------------------------------- anchors


def test_cell_anchors_hand_values():
    a = cell_anchors(32, (0.5, 1.0, 2.0)).numpy()
    s2 = math.sqrt(2)
    expected = [
        [-16 * s2, -8 * s2, 16 * s2, 8 * s2],  # r = h / w = 0.5: wide
        [-16, -16, 16, 16],
        [-8 * s2, -16 * s2, 8 * s2, 16 * s2],
    ]
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    areas = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    np.testing.assert_allclose(areas, 32 * 32, rtol=1e-5)


def test_grid_anchors_centres_and_order():
    a = grid_anchors((2, 3), stride=4, size=8, ratios=(1.0, 4.0)).numpy()
    assert a.shape == (2 * 3 * 2, 4)
    # position-major: (row 0, col 0) ratio 1, ratio 4, then (row 0, col 1) ...
    np.testing.assert_allclose(a[0], [-2, -2, 6, 6])
    np.testing.assert_allclose(a[1], [0, -6, 4, 10])  # w = 4, h = 16 around (2, 2)
    np.testing.assert_allclose(a[2], [2, -2, 10, 6])  # centre (6, 2)
    np.testing.assert_allclose(a[6], [-2, 2, 6, 10])  # row 1, col 0: centre (2, 6)
    centres = (a[:, :2] + a[:, 2:]) / 2
    np.testing.assert_allclose(centres[-1], [10, 6])


# --------------------------------------------------------------------------- box coder


def test_box_coder_hand_values():
    ref = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    box = torch.tensor([[5.0, 5.0, 25.0, 45.0]])
    d = BoxCoder().encode(ref, box)
    np.testing.assert_allclose(d.numpy(), [[1.0, 0.75, math.log(2), math.log(2)]], rtol=1e-6)
    d = BoxCoder((10, 10, 5, 5)).encode(ref, box)
    np.testing.assert_allclose(d.numpy(), [[10.0, 7.5, 5 * math.log(2), 5 * math.log(2)]], 1e-6)
    np.testing.assert_allclose(BoxCoder((10, 10, 5, 5)).decode(ref, d).numpy(), box, atol=1e-5)


@pytest.mark.parametrize("weights", [(1, 1, 1, 1), (10, 10, 5, 5)])
def test_box_coder_round_trip(weights):
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    ref = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], 1).double()
    xy = torch.rand(50, 2, generator=g) * 100
    box = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], 1).double()
    coder = BoxCoder(weights)
    np.testing.assert_allclose(coder.decode(ref, coder.encode(ref, box)).numpy(), box, atol=1e-9)


def test_box_coder_clamps_size_deltas():
    ref = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    out = BoxCoder().decode(ref, torch.tensor([[0.0, 0.0, 100.0, 100.0]]))
    np.testing.assert_allclose(out[0, 2] - out[0, 0], math.exp(DELTA_CLAMP), rtol=1e-5)


def test_clip_and_ioa():
    b = clip_boxes(torch.tensor([[-5.0, 2.0, 30.0, 50.0]]), height=40, width=20)
    np.testing.assert_allclose(b.numpy(), [[0, 2, 20, 40]])
    r = ioa(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 20, 10]]))
    np.testing.assert_allclose(r.numpy(), [[0.5]])


# --------------------------------------------------------------------------- matching


def test_match_thresholds_and_low_quality():
    iou = torch.tensor([[0.8, 0.4, 0.1, 0.35], [0.2, 0.6, 0.05, 0.0]])
    matched, labels = match(iou, 0.7, 0.3, allow_low_quality=False)
    assert matched.tolist() == [0, 1, 0, 0]
    assert labels.tolist() == [POSITIVE, IGNORE, NEGATIVE, IGNORE]
    _, labels = match(iou, 0.7, 0.3, allow_low_quality=True)
    assert labels.tolist() == [POSITIVE, POSITIVE, NEGATIVE, IGNORE]  # GT 1's best anchor
    matched, labels = match(torch.zeros((0, 3)), 0.7, 0.3, allow_low_quality=True)
    assert labels.tolist() == [NEGATIVE] * 3


def test_sample_caps_positives():
    labels = torch.tensor([1] * 10 + [0] * 20 + [-1] * 5, dtype=torch.int8)
    pos, neg = sample(labels, 8, 0.25, torch.Generator().manual_seed(0))
    assert len(pos) == 2 and len(neg) == 6
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    pos, neg = sample(labels[:12], 64, 0.5)
    assert len(pos) == 10 and len(neg) == 2


def test_assign_anchors_hand_case():
    cfg = RCNNConfig(rpn_batch_per_image=256)
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with GT: positive
            [5.0, 0.0, 15.0, 10.0],  # IoU 1/3: ignored
            [50.0, 50.0, 60.0, 60.0],  # IoU 0: negative
            [100.0, 0.0, 110.0, 10.0],  # inside the crowd box: ignored, not negative
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    crowd = torch.tensor([[95.0, -5.0, 120.0, 20.0]])
    labels, targets = assign_anchors(anchors, gt, crowd, cfg, BoxCoder())
    assert labels.tolist() == [1, -1, 0, -1]
    np.testing.assert_allclose(targets[0].numpy(), 0.0, atol=1e-7)
    # a GT matching nothing above 0.7 still gets its best anchor
    gt = torch.tensor([[3.0, 0.0, 13.0, 10.0]])  # IoU 7/13 with anchor 0, 2/3 with anchor 1
    labels, targets = assign_anchors(anchors, gt, None, cfg, BoxCoder())
    assert labels.tolist() == [-1, 1, 0, 0]
    np.testing.assert_allclose(targets[1].numpy(), [-0.2, 0, 0, 0], atol=1e-6)


def test_assign_proposals_hand_case():
    cfg = RCNNConfig(roi_batch_per_image=64, roi_pos_fraction=0.25)
    props = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1
            [0.0, 0.0, 10.0, 6.0],  # IoU 0.6: positive at 0.5
            [0.0, 0.0, 10.0, 4.0],  # IoU 0.4: negative
            [30.0, 30.0, 40.0, 40.0],  # negative
            [80.0, 80.0, 90.0, 90.0],  # in a crowd: dropped
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    crowd = torch.tensor([[78.0, 78.0, 100.0, 100.0]])
    pos, neg, matched, iou = assign_proposals(props, gt, crowd, cfg)
    assert sorted(pos.tolist()) == [0, 1]
    assert matched[:2].tolist() == [0, 0]
    assert sorted(neg.tolist()) == [2, 3]
    np.testing.assert_allclose(iou.numpy(), [1.0, 0.6, 0.4, 0, 0], atol=1e-6)
    pos, neg, _, _ = assign_proposals(props, torch.zeros((0, 4)), None, cfg)
    assert len(pos) == 0 and sorted(neg.tolist()) == [0, 1, 2, 3, 4]


def test_rpn_outputs_and_losses():
    torch.manual_seed(0)
    cfg = tiny()
    rpn = RPN(cfg, 8, (4, 8, 16, 32))
    feats = [torch.randn(2, 8, 32 // s * 4, 40 // s * 4) for s in (4, 8, 16, 32)]
    n_anchors = sum(f.shape[-1] * f.shape[-2] * 3 for f in feats)
    assert sum(len(a) for a in rpn.anchors(feats)) == n_anchors
    gt = [torch.tensor([[10.0, 10.0, 40.0, 90.0]]), torch.zeros((0, 4))]
    props, losses = rpn(feats, [(128, 160), (100, 120)], gt, None)
    assert set(losses) == {"rpn_cls", "rpn_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(props[0]) <= cfg.rpn_post_nms_train
    assert (props[1][:, 2] <= 120).all() and (props[1][:, 3] <= 100).all()


# --------------------------------------------------------------------------- DensePose head


@pytest.mark.parametrize("make", [tiny, full])
def test_densepose_head_shapes(make):
    cfg = make()
    head = DensePoseHead(cfg.fpn_channels, cfg.head_width, cfg.head_convs, cfg.coarse_classes)
    with torch.no_grad():
        out = head(torch.zeros(2, cfg.fpn_channels, cfg.dp_pooler, cfg.dp_pooler))
    m = 4 * cfg.dp_pooler
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "fine": (2, 25, m, m),
        "coarse": (2, cfg.coarse_classes, m, m),
        "u": (2, 24, m, m),
        "v": (2, 24, m, m),
    }
    n_convs = sum(isinstance(x, torch.nn.Conv2d) for x in head.convs)
    assert n_convs == 8


def test_get_config_overrides():
    assert get_config("tiny", iters=3, lr=None).iters == 3
    assert RCNNConfig.from_dict(full().to_dict()) == full()
    with pytest.raises(ValueError, match="unknown rcnn config"):
        get_config("huge")


def _bilinear_reference(maps, roi, gx, gy):
    """Slow NumPy bilinear sample: cell centres at (j + 0.5) / M, border-clamped."""
    _, c, h, w = maps.shape
    out = np.zeros((len(roi), c))
    for n in range(len(roi)):
        px = min(max(gx[n] * w - 0.5, 0.0), w - 1.0)
        py = min(max(gy[n] * h - 0.5, 0.0), h - 1.0)
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
        ax, ay = px - x0, py - y0
        m = maps[roi[n]]
        out[n] = (
            m[:, y0, x0] * (1 - ax) * (1 - ay)
            + m[:, y0, x1] * ax * (1 - ay)
            + m[:, y1, x0] * (1 - ax) * ay
            + m[:, y1, x1] * ax * ay
        )
    return out


def test_sample_at_points_vs_numpy_and_grid_sample():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 4, 6, 5))
    roi = np.array([0, 0, 1, 2, 2, 1])
    gx = np.array([0.0, 1.0, 0.37, 0.5, 0.05, 0.99])
    gy = np.array([0.0, 1.0, 0.81, 0.5, 0.93, 0.02])
    t = torch.from_numpy(maps)
    got = sample_at_points(t, torch.from_numpy(roi), torch.from_numpy(gx), torch.from_numpy(gy))
    np.testing.assert_allclose(got.numpy(), _bilinear_reference(maps, roi, gx, gy), atol=1e-12)
    grid = torch.from_numpy(np.stack([2 * gx - 1, 2 * gy - 1], 1))[:, None, None, :]
    gs = F.grid_sample(t[roi], grid, align_corners=False, padding_mode="border")
    np.testing.assert_allclose(got.numpy(), gs[:, :, 0, 0].numpy(), atol=1e-12)


def test_densepose_losses_hand_case():
    """Two ROIs, three points inside, one outside; NumPy CE and smooth-L1 as reference."""
    rng = np.random.default_rng(1)
    m = 8
    out_np = {
        "fine": rng.normal(size=(2, 25, m, m)),
        "coarse": rng.normal(size=(2, 15, m, m)),
        "u": rng.random(size=(2, 24, m, m)),
        "v": rng.random(size=(2, 24, m, m)),
    }
    out = {k: torch.from_numpy(v).requires_grad_() for k, v in out_np.items()}
    rois = torch.tensor([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 16.0, 16.0]])
    dps = [
        {"x": np.array([12.0, 30.0, 70.0]), "y": np.array([25.0, 99.0, 50.0]),
         "I": np.array([3, 24, 5]), "U": np.array([0.2, 0.9, 0.5]),
         "V": np.array([0.4, 0.1, 0.5]), "dp_masks": None},
        {"x": np.array([8.0]), "y": np.array([4.0]), "I": np.array([1]),
         "U": np.array([0.7]), "V": np.array([0.3]), "dp_masks": None},
    ]  # fmt: skip
    cfg = RCNNConfig(w_part=1.0, w_uv=2.0, uv_beta=0.1)
    losses = densepose_losses(out, rois, rois, dps, cfg)
    # point 3 of ROI 0 (x = 70) lies outside the box and is dropped
    roi = np.array([0, 0, 1])
    gx = np.array([(12 - 10) / 40, (30 - 10) / 40, 8 / 16])
    gy = np.array([(25 - 20) / 80, (99 - 20) / 80, 4 / 16])
    parts = np.array([3, 24, 1])
    fine = _bilinear_reference(out_np["fine"], roi, gx, gy)
    logz = np.log(np.exp(fine).sum(1))
    ce = np.mean(logz - fine[np.arange(3), parts])
    pu = _bilinear_reference(out_np["u"], roi, gx, gy)[np.arange(3), parts - 1]
    pv = _bilinear_reference(out_np["v"], roi, gx, gy)[np.arange(3), parts - 1]

    def smooth_l1(d, beta=0.1):
        d = np.abs(d)
        return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta).mean()

    uv = smooth_l1(pu - np.array([0.2, 0.9, 0.7])) + smooth_l1(pv - np.array([0.4, 0.1, 0.3]))
    np.testing.assert_allclose(float(losses["dp_part"].detach()), ce, rtol=1e-6)
    np.testing.assert_allclose(float(losses["dp_uv"].detach()), 2.0 * uv, rtol=1e-5)
    assert float(losses["dp_coarse"].detach()) == 0.0
    sum(losses.values()).backward()  # zero losses keep the graph
    assert out["u"].grad is not None and out["coarse"].grad is not None


def test_coarse_targets_hand_case():
    mask = np.zeros((256, 256), np.uint8)
    mask[:, :128] = 3  # left half of the GT box is part 3
    mask[200:, :] = 14  # bottom rows: head
    gt = torch.tensor([[0.0, 0.0, 40.0, 80.0]])
    rois = torch.tensor([[20.0, 0.0, 60.0, 80.0]])  # shifted right by half a box
    lab, keep = coarse_targets(rois, gt, [mask], 4, binary=False)
    assert keep.tolist() == [0]
    # cell centres x = 25, 35, 45, 55: mask columns 160, 224, outside, outside
    # y = 10, 30, 50, 70: mask rows 32, 96, 160, 224
    assert lab[0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [14, 14, 0, 0]]
    lab, _ = coarse_targets(gt, gt, [mask], 4, binary=True)
    assert lab[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    lab, keep = coarse_targets(gt, gt, [None], 4, binary=False)
    assert lab.shape == (0, 4, 4) and len(keep) == 0


def test_iuv_from_outputs():
    m = 4
    fine = torch.zeros(1, 25, m, m)
    fine[0, 7] = 1.0  # part 7 everywhere
    fine[0, 0] = 5.0  # the background channel is not used for labels
    coarse = torch.zeros(1, 15, m, m)
    coarse[0, 0, :, :2] = 1.0  # left half background
    coarse[0, 2, :, 2:] = 1.0
    u = torch.full((1, 24, m, m), 0.5)
    u[0, 6] = 1.5  # clamped to 1 -> 255
    v = torch.full((1, 24, m, m), 0.25)
    iuv = iuv_from_outputs({"fine": fine, "coarse": coarse, "u": u, "v": v}, 3, 8)
    assert iuv.shape == (3, 3, 8) and iuv.dtype == torch.uint8
    assert (iuv[0, :, :4] == 0).all() and (iuv[0, :, 4:] == 7).all()
    assert (iuv[1, :, 4:] == 255).all() and (iuv[2, :, 4:] == 63).all()
    assert (iuv[1:, :, :4] == 0).all()


def test_full_model_runs_on_a_tiny_input():
    """The full config (R50, FPN 256, P6 anchors, 512-ch head), shapes only, no training."""
    torch.manual_seed(0)
    cfg = full().replace(rpn_post_nms_test=20, max_dets=2, dp_max_rois_per_image=2,
                         test_score_thresh=0.0)  # fmt: skip
    model = DensePoseRCNN(cfg)
    assert model.use_p6 and model.rpn.strides == (4, 8, 16, 32, 64)
    images = torch.randn(1, 3, 64, 64)
    n = 50
    dp = {"x": torch.linspace(10, 40, n), "y": torch.linspace(5, 60, n),
          "I": torch.randint(1, 25, (n,)), "U": torch.rand(n), "V": torch.rand(n),
          "dp_masks": torch.randint(0, 15, (256, 256), dtype=torch.uint8)}  # fmt: skip
    meta = {"height": 64, "width": 60, "boxes": torch.tensor([[8.0, 4.0, 44.0, 62.0]]),
            "crowd_boxes": torch.zeros((0, 4)), "dp": [dp]}  # fmt: skip
    with torch.no_grad():
        losses = model(images, [meta])
        assert set(losses) == {"rpn_cls", "rpn_reg", "box_cls", "box_reg", "dp_part",
                               "dp_uv", "dp_coarse"}  # fmt: skip
        assert all(torch.isfinite(v) for v in losses.values())
        model.eval()
        (res,) = model(images, [meta])
    assert res["boxes"].shape[1] == 4 and len(res["boxes"]) <= 2
    assert res["dp"]["fine"].shape[1:] == (25, 56, 56)
    assert res["dp"]["u"].shape[1:] == (24, 56, 56)


def test_point_targets_shared_and_missing_annotations():
    ann = {"x": torch.tensor([1.0, 5.0, 9.0]), "y": torch.tensor([1.0, 5.0, 9.0]),
           "I": torch.tensor([1, 2, 3]), "U": torch.tensor([0.1, 0.2, 0.3]),
           "V": torch.tensor([0.4, 0.5, 0.6])}  # fmt: skip
    rois = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [4.0, 4.0, 12.0, 12.0]])
    roi_index, gx, gy, parts, u, v = point_targets(rois, [ann, None, ann])
    assert roi_index.tolist() == [0, 0, 0, 2, 2]
    assert parts.tolist() == [1, 2, 3, 2, 3]
    np.testing.assert_allclose(gx.numpy(), [0.1, 0.5, 0.9, 1 / 8, 5 / 8], rtol=1e-6)
    np.testing.assert_allclose(gy.numpy(), gx.numpy(), rtol=1e-6)
    np.testing.assert_allclose(u.numpy(), [0.1, 0.2, 0.3, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), [0.4, 0.5, 0.6, 0.5, 0.6], rtol=1e-6)
    assert len(point_targets(rois, [None, None, None])[0]) == 0
