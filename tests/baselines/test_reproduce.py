"""``python -m baselines.reproduce gpu --smoke``: the one-command recipe end to end on the CPU.

Renders a toy benchmark, trains both ``gpu``-config models for a few seconds each (at
once), predicts, scores, compares, publishes to a store inside the output folder and
renders it; a second call finds everything done and changes nothing.
"""

from __future__ import annotations

import json

from baselines.reproduce import main


def test_gpu_recipe_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["gpu", "--smoke", "--out", str(out), "--time-budget", "6"]) == 0
    rec = json.loads((out / "recipe.json").read_text())
    assert rec["smoke"] and rec["recipe"]["fcn_config"] == "gpu"
    assert len(rec["synth_lines"]) == 2 and rec["synth_lines"][0].startswith("dpeval synth ")
    for model in ("fcn", "rcnn"):
        d = out / model
        assert (d / "preds.json").is_file() and (d / "score.json").is_file()
        shards = sorted(d.glob("weights-*.pt"))
        assert shards and all(p.stat().st_size <= 16 * 2**20 for p in shards)
        assert not (d / "model.pt").exists()  # the gpu recipe keeps only the shards
        assert set(rec["summary"][model]) >= {"gpsm_AP", "AUC10", "AUC30"}
    assert "paired image bootstrap" in (out / "compare.txt").read_text()
    entries = sorted((out / "leaderboard" / "entries").glob("*.json"))
    assert len(entries) == 2
    training = json.loads(entries[0].read_text())["training"]
    assert training["config_name"] == "gpu" and training["iterations"] >= 1
    assert (out / "leaderboard" / "README.md").is_file()
    assert (out / "leaderboard" / "index.html").is_file()
    capsys.readouterr()

    # resumable: a second call has nothing left to do and publishes nothing twice
    assert main(["gpu", "--smoke", "--out", str(out), "--time-budget", "6"]) == 0
    assert "train " not in capsys.readouterr().out
    assert len(list((out / "leaderboard" / "entries").glob("*.json"))) == 2


def test_shards_round_trip(tmp_path):
    import torch

    from baselines.common.train import load_checkpoint, save_checkpoint, save_weight_shards

    big = torch.randn(3000, 1000)  # 12 MB in float32, 6 MB in float16
    state = {"model": {"a": big, "b": torch.arange(5), "c": torch.randn(10)}, "config": {"x": 1},
             "iter": 7, "optimizer": {"huge": 1}}  # fmt: skip
    save_checkpoint(tmp_path / "model.pt", state)
    paths = save_weight_shards(tmp_path, max_bytes=2 * 2**20)
    assert len(paths) >= 3 and all(p.stat().st_size <= 2 * 2**20 + 4096 for p in paths)
    (tmp_path / "model.pt").unlink()
    got = load_checkpoint(tmp_path / "model.pt")
    assert got["config"] == {"x": 1} and got["iter"] == 7 and "optimizer" not in got
    assert torch.equal(got["model"]["b"], torch.arange(5))
    assert torch.allclose(got["model"]["a"], big, atol=1e-2, rtol=1e-3)
    assert got["model"]["a"].dtype == torch.float32
