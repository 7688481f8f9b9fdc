"""DensePose-RCNN end to end on ``synth_tiny``: train, predict, score, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from baselines.rcnn.__main__ import main
from baselines.rcnn.config import get_config
from baselines.rcnn.predict import predict
from baselines.rcnn.train import LOG_FILE, load_model, train
from dpeval.api import score

#: Smoke training: the first 4 train images (it must be able to fit them), 60 iterations
#: of about 0.3 s each on one thread.
SMOKE_IMAGES = 4
SMOKE_ITERS = 60


@pytest.fixture(scope="module")
def trained(synth_tiny, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("rcnn_ckpt")
    cfg = get_config("tiny", iters=SMOKE_ITERS)
    result = train(cfg, synth_tiny, ckpt, device="cpu", seed=0, max_images=SMOKE_IMAGES)
    return ckpt, result


def test_training_lowers_the_loss(trained):
    ckpt, result = trained
    assert result.iters == SMOKE_ITERS
    assert all(math.isfinite(x) for x in result.losses)
    # measured: mean of the first 5 iterations 7.95, of the last 5 2.67 (ratio 0.34)
    first, last = result.mean(first=True), result.mean(first=False)
    assert last < 0.6 * first, (first, last)
    for key in ("rpn_cls", "dp_coarse"):  # each term learns too
        series = [h[key] for h in result.history]
        assert sum(series[-10:]) < 0.8 * sum(series[:10]), key
    assert (ckpt / "model.pt").is_file() and (ckpt / "config.json").is_file()
    rows = [json.loads(line) for line in (ckpt / LOG_FILE).read_text().splitlines()]
    assert len(rows) == SMOKE_ITERS and {"loss", "dp_part", "dp_uv", "box_reg"} <= set(rows[0])


def test_checkpoint_reloads_identically(trained):
    ckpt, _ = trained
    a, b = load_model(ckpt), load_model(ckpt / "model.pt")
    assert not a.training
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_predict_and_score(trained, synth_tiny, tmp_path):
    ckpt, _ = trained
    out = tmp_path / "preds.json"
    r = predict(ckpt, synth_tiny, out, split="val", score_threshold=0.0, device="cpu")
    assert r.n_images == 12 and r.n_detections >= 1
    records = json.loads(out.read_text())
    assert len(records) == r.n_detections
    per_image: dict[int, int] = {}
    for rec in records:
        assert rec["category_id"] == 1 and 0.0 <= rec["score"] <= 1.0
        _, h, w = rec["uv_shape"]
        assert (h, w) == (max(1, math.floor(rec["bbox"][3])), max(1, math.floor(rec["bbox"][2])))
        per_image[rec["image_id"]] = per_image.get(rec["image_id"], 0) + 1
    assert max(per_image.values()) <= 20
    gt = synth_tiny / "annotations" / "densepose_synth_val.json"
    s = score(out, gt)
    for key in ("gps_perpart", "gpsm"):
        assert math.isfinite(s.metrics[key]["AP"]), key
    assert 0.0 <= s.metrics["points"]["AUC10"] <= 1.0


def test_cli_train_and_predict(synth_tiny, tmp_path, capsys):
    ckpt = tmp_path / "ck"
    argv = ["train", "--config", "tiny", "--data", str(synth_tiny), "--out", str(ckpt)]
    assert main([*argv, "--iters", "2", "--max-images", "2", "--device", "cpu"]) == 0
    assert "trained 2 iterations" in capsys.readouterr().out
    out = tmp_path / "p.json"
    argv = ["predict", "--ckpt", str(ckpt), "--data", str(synth_tiny), "--out", str(out)]
    assert main([*argv, "--max-images", "2", "--score-threshold", "0", "--max-dets", "3"]) == 0
    assert "detections on 2 images" in capsys.readouterr().out
    assert len(json.loads(out.read_text())) <= 6
