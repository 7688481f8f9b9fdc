"""baselines.publish: the training record read from a checkpoint directory."""

from __future__ import annotations

import json

import pytest

from baselines.publish import training_record
from dpeval.errors import FormatError


def test_training_record_from_checkpoint_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "tiny", "depth": 18}))
    rows = [{"iter": i, "loss": 10.0 - i / 10, "time": 0.5 * (i + 1)} for i in range(100)]
    (tmp_path / "loss_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rec = training_record("rcnn", tmp_path, hardware="test box")
    assert rec["iterations"] == 100 and rec["config_name"] == "tiny"
    assert rec["loss_window"] == 10
    assert rec["loss_first"] == pytest.approx(10.0 - 0.45)  # mean of iters 0..9
    assert rec["loss_last"] == pytest.approx(10.0 - 9.45)  # mean of iters 90..99
    assert rec["train_seconds"] == 50.0 and rec["hardware"] == "test box"
    assert "DensePose-RCNN" in rec["model"]


def test_training_record_missing_files(tmp_path):
    with pytest.raises(FormatError, match=r"config\.json"):
        training_record("fcn", tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "loss_log.jsonl").write_text("")
    with pytest.raises(FormatError, match="no training iterations"):
        training_record("fcn", tmp_path)
