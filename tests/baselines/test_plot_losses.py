"""``python -m baselines.plot_losses``: reads both loss logs and writes the PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.plot_losses import _smooth, main


def test_smooth_means_per_window():
    t = np.array([0.0, 10.0, 59.0, 61.0, 100.0, 130.0])
    y = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    minutes, means = _smooth(t, y, 60.0)
    np.testing.assert_allclose(means, [2.0, 15.0, 5.0])
    np.testing.assert_allclose(minutes * 60, [23.0, 80.5, 130.0])


def test_plot_run_writes_png(tmp_path):
    for model, keys in (("fcn", ("loss_I", "loss_U", "loss_V")), ("rcnn", ("dp_part", "dp_uv"))):
        d = tmp_path / "run" / model
        d.mkdir(parents=True)
        rows = [{"iter": i, "time": 5.0 * i, "lr": 1e-3, **{k: 1.0 / (i + 1) for k in keys}}
                for i in range(50)]  # fmt: skip
        (d / "loss_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        (d / "config.json").write_text(json.dumps({"uv_weight": 2.0}))
    out = tmp_path / "curves.png"
    assert main([str(tmp_path / "run"), "-o", str(out), "--mark", "2"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), "-o", str(out)])
    assert e.value.code == 2
