"""baselines.common.data (reader, collate, errors), losses and prediction writers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import dpeval
from baselines.common import data
from baselines.common.losses import dense_iuv_losses
from baselines.common.predict import (
    box_iuv_size,
    instances_to_predictions,
    iuv_from_outputs,
    write_dense,
    write_instances,
)
from dpeval.errors import FormatError
from dpeval.formats import load_ground_truth


@pytest.fixture(scope="module")
def val_ds(synth_tiny):
    return data.SynthDataset(synth_tiny, "val")


def test_item_fields(val_ds):
    assert len(val_ds) == 12 and val_ds.image_ids == list(range(1, 13))
    n_dense = 0
    for i in range(len(val_ds)):
        item = val_ds[i]
        assert item["image"].shape == (3, 128, 160) and item["image"].dtype == torch.float32
        assert item["iuv"].shape == (3, 128, 160) and item["iuv"].dtype == torch.uint8
        k = len(item["boxes"])
        assert item["boxes"].shape == (k, 4) and item["masks"].shape == (k, 128, 160)
        assert len(item["dp"]) == k and item["crowd_boxes"].shape == (0, 4)
        for box, mask, dp in zip(item["boxes"], item["masks"], item["dp"], strict=True):
            assert mask.any()
            ys, xs = torch.nonzero(mask, as_tuple=True)
            # the mask lies in its box
            assert xs.min() >= box[0] - 1 and xs.max() <= box[2] + 1
            assert ys.min() >= box[1] - 1 and ys.max() <= box[3] + 1
            if dp is None:
                continue
            n_dense += 1
            assert dp["I"].dtype == torch.int64 and 1 <= dp["I"].min() and dp["I"].max() <= 24
            assert dp["dp_masks"].shape == (256, 256) and dp["dp_masks"].max() <= 14
            # points mapped as the evaluator does: they land on their part in the IUV map
            xi = dp["x"].long().clamp(0, 159)
            yi = dp["y"].long().clamp(0, 127)
            assert (item["iuv"][0][yi, xi] == dp["I"]).float().mean() > 0.9
            assert ((dp["x"] >= box[0]) & (dp["x"] <= box[2])).all()
    assert n_dense > 0


def test_normalisation_and_collate(synth_tiny, val_ds):
    item = val_ds[0]
    img = data.load_image(synth_tiny / "images" / "val" / item["file_name"])
    assert torch.equal(img, item["image"])
    rgb = img * torch.tensor(data.STD)[:, None, None] + torch.tensor(data.MEAN)[:, None, None]
    assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1.0 + 1e-6
    small = dict(item, image=torch.ones(3, 50, 70))
    images, targets = data.collate([item, small])
    assert images.shape == (2, 3, 128, 160)
    assert float(images[1, :, 50:].abs().sum()) == 0.0 and float(images[1, :, :50, :70].min()) == 1
    assert "image" not in targets[0] and targets[1]["image_id"] == item["image_id"]
    assert data.pad_batch([torch.zeros(1, 33, 1)], value=-1).shape == (1, 1, 64, 32)


def test_no_iuv_and_max_images(synth_tiny):
    ds = data.SynthDataset(synth_tiny, "val", load_iuv=False, max_images=3)
    assert len(ds) == 3 and ds[2]["iuv"] is None
    ds = data.SynthDataset(synth_tiny, "val", iuv_dir=synth_tiny / "nowhere")
    assert ds[0]["iuv"] is None


def test_bad_inputs_name_file_and_fix(synth_tiny, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synth_tiny / "annotations", root / "annotations")
    for sub in ("images", "iuv"):
        shutil.copytree(synth_tiny / sub / "val", root / sub / "val")
    (root / "images" / "val" / "000002.jpg").unlink()
    (root / "iuv" / "val" / "000003.png").unlink()
    (root / "images" / "val" / "000004.jpg").write_bytes(b"not an image")
    from PIL import Image

    Image.new("RGB", (10, 12)).save(root / "iuv" / "val" / "000005.png")
    Image.new("RGB", (10, 12)).save(root / "images" / "val" / "000006.jpg")
    ds = data.SynthDataset(root, "val")
    with pytest.raises(FormatError, match=r"image id 2 .*000002\.jpg.* not found"):
        ds[1]
    with pytest.raises(FormatError, match=r"000003\.png not found; pass load_iuv=False"):
        ds[2]
    with pytest.raises(FormatError, match=r"cannot read image .*000004\.jpg"):
        ds[3]
    with pytest.raises(FormatError, match=r"12x10 \(HxW\) but the image is 128x160"):
        ds[4]
    with pytest.raises(FormatError, match=r"000006\.jpg.*12x10 \(HxW\) but the ground truth"):
        ds[5]
    with pytest.raises(FormatError, match="not found"):
        data.SynthDataset(root, "test")


def test_dp_mask_decoding_later_part_wins():
    from pycocotools import mask as mask_utils

    a = np.zeros((256, 256), dtype=np.uint8, order="F")
    a[:100] = 1
    b = np.zeros((256, 256), dtype=np.uint8, order="F")
    b[50:150] = 1
    rles = [None] * 14
    rles[1], rles[4] = mask_utils.encode(a), mask_utils.encode(b)
    label = data.decode_dp_masks(rles)
    assert label[10, 0] == 2 and label[60, 0] == 5 and label[120, 0] == 5 and label[200, 0] == 0
    assert data.decode_dp_masks(None) is None


def test_losses_hand_computed():
    # 1 image, 2x2 pixels: background, part 3, part 24, ignored
    logits = torch.zeros(1, 25, 2, 2)
    logits[0, 3, 0, 1] = 2.0  # part-3 pixel favours its class
    i_gt = torch.tensor([[[0, 3], [24, -1]]])
    u = torch.zeros(1, 24, 2, 2)
    v = torch.zeros(1, 24, 2, 2)
    u[0, 2, 0, 1] = 0.5  # part 3's U at its pixel (error 0.5 - 0.25 = 0.25)
    u[0, 0, 0, 1] = 9.0  # another part's channel: ignored
    v[0, 23, 1, 0] = 3.0  # part 24's V (error 3 - 1 = 2: linear branch, 2 - 0.5 = 1.5)
    u_gt = torch.tensor([[[0.9, 0.25], [0.0, 0.3]]])
    v_gt = torch.tensor([[[0.9, 0.0], [1.0, 0.3]]])
    out = dense_iuv_losses(logits, u, v, i_gt, u_gt, v_gt, bg_weight=0.5)
    ce_bg = np.log(25.0)
    ce_p3 = -(2.0 - np.log(24 + np.exp(2.0)))
    ce_p24 = np.log(25.0)  # all-zero logits
    want_i = (0.5 * ce_bg + ce_p3 + ce_p24) / 2.5
    assert float(out["loss_I"]) == pytest.approx(want_i, rel=1e-6)
    assert float(out["loss_U"]) == pytest.approx((0.5 * 0.25**2 + 0.0) / 2, rel=1e-6)
    assert float(out["loss_V"]) == pytest.approx((0.0 + 1.5) / 2, rel=1e-6)
    # no foreground: zero U/V losses that still backpropagate
    u.requires_grad_(True)
    empty = dense_iuv_losses(logits, u, v, torch.zeros(1, 2, 2, dtype=torch.long), u_gt, v_gt)
    assert float(empty["loss_U"].detach()) == 0.0
    empty["loss_U"].backward()
    with pytest.raises(ValueError, match="25"):
        dense_iuv_losses(logits[:, :24], u, v, i_gt, u_gt, v_gt)


def test_iuv_from_outputs():
    logits = torch.zeros(25, 2, 3)
    logits[0, 0] = 5.0  # row 0 background
    logits[7, 1] = 5.0  # row 1 part 7
    u = torch.full((24, 2, 3), 0.5)
    u[6] = 1.5  # clamped to 255
    v = torch.full((24, 2, 3), 0.2)
    iuv = iuv_from_outputs(logits, u, v)
    assert iuv.dtype == np.uint8 and iuv.shape == (3, 2, 3)
    assert iuv[:, 0].tolist() == [[0] * 3] * 3
    assert iuv[:, 1].tolist() == [[7] * 3, [255] * 3, [51] * 3]
    assert iuv_from_outputs(logits, u, v, size=(4, 6)).shape == (3, 4, 6)
    assert box_iuv_size([1.5, 2.0, 11.9, 2.5]) == (1, 10)


def test_writers_round_trip_through_dpeval(synth_tiny, tmp_path):
    gt_path = synth_tiny / "annotations" / "densepose_synth_val.json"
    gt = load_ground_truth(gt_path)
    ds = data.SynthDataset(synth_tiny, "val")
    instances, maps = [], {}
    for i in range(len(ds)):
        item = ds[i]
        iuv = item["iuv"].numpy()
        maps[item["image_id"]] = iuv
        for box in item["boxes"].tolist():
            x1, y1, x2, y2 = (int(t) for t in box)
            instances.append((item["image_id"], box, 0.9, iuv[:, y1:y2, x1:x2]))
    preds = write_instances(instances_to_predictions(instances), tmp_path / "p.json")
    assert json.loads(preds.read_text())[0]["uv_shape"][0] == 3
    s = dpeval.score(preds, gt_path, metrics=["gps", "points"])
    # the ground-truth IUV cropped to the ground-truth boxes is (nearly) perfect
    assert s.metrics["gps_perpart"]["AP"] > 0.9
    dense_dir = write_dense(maps, gt.images, tmp_path / "dense")
    assert sorted(p.name for p in dense_dir.iterdir())[0] == "000001.png"
    s = dpeval.score(dense_dir, gt_path, metrics="points")
    assert s.metrics["points"]["AUC10"] > 0.8
    with pytest.raises(ValueError, match="box_iuv_size"):
        instances_to_predictions([(1, [0, 0, 10, 10], 1.0, np.zeros((3, 4, 4), np.uint8))])
