"""Pieces of the CPU/GPU recipes: integer RCNN boxes, dense IUV targets, time budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.common.train import Schedule, lr_factor, train_loop
from baselines.rcnn.config import CONFIGS, RCNNConfig, get_config
from baselines.rcnn.heads import dense_targets
from baselines.rcnn.model import DensePoseRCNN, integer_boxes


def test_integer_boxes():
    b = torch.tensor([[10.4, 20.6, 30.5, 40.2], [-3.0, -1.0, 0.2, 0.1], [95.0, 10.0, 130.0, 90.0]])
    out = integer_boxes(b, height=80, width=100)
    assert out.tolist() == [[10, 21, 30, 40], [0, 0, 1, 1], [95, 10, 100, 80]]
    assert torch.equal(out, out.round())


def test_detect_exports_whole_pixel_boxes_matching_the_maps():
    # the official evaluator pastes the box-sized map at (int(x), int(y)): the head must
    # run on, and the JSON carry, the same whole-pixel box
    from baselines.common.predict import box_iuv_size

    torch.manual_seed(0)
    cfg = get_config("tiny", width=8, fpn_channels=16, head_width=16, fc_dim=32,
                     test_score_thresh=0.0)  # fmt: skip
    model = DensePoseRCNN(cfg).eval()
    with torch.no_grad():
        r = model(torch.randn(1, 3, 64, 96), [{"height": 60, "width": 90}])[0]
    b = r["boxes"]
    assert len(b) > 0 and torch.equal(b, b.round())
    assert (b[:, 2] <= 90).all() and (b[:, 3] <= 60).all() and (b[:, :2] >= 0).all()
    for box in b.tolist():
        h, w = box_iuv_size(box)
        assert (h, w) == (box[3] - box[1], box[2] - box[0])


def test_dense_targets_sample_cell_centres():
    iuv = torch.zeros(3, 8, 8, dtype=torch.uint8)
    iuv[0] = torch.arange(64).reshape(8, 8) % 25
    iuv[1] = torch.arange(64).reshape(8, 8)
    mask = torch.ones(8, 8, dtype=torch.uint8)
    mask[:, 6:] = 0  # another person's pixels: background for this one
    d = {"iuv": iuv, "mask": mask}
    labels, u, _ = dense_targets(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), [d], 8)
    want = iuv[0].long() * mask
    assert torch.equal(labels[0], want)
    assert torch.allclose(u[0], iuv[1].float() / 255)
    # a 16-px ROI on a 8-cell grid reads pixels 1, 3, 5, 7 (cell centres 2j + 1)
    labels, _, _ = dense_targets(torch.tensor([[-8.0, 0.0, 8.0, 16.0]]), [d], 8)
    assert (labels[0, :, :4] == -1).all()  # outside the image: ignored
    assert torch.equal(labels[0, :4, 4:], want[1::2, 1::2])
    assert (labels[0, 4:] == -1).all()
    labels, _, _ = dense_targets(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), [None], 8)
    assert (labels == -1).all()


def test_configs_round_trip_and_cpu_gpu_settings():
    for name, make in CONFIGS.items():
        cfg = make()
        assert RCNNConfig.from_dict(cfg.to_dict()) == cfg, name
    cpu, gpu = get_config("cpu"), get_config("gpu")
    assert cpu.dense_targets and cpu.flip and cpu.time_budget <= 3600 and cpu.threads == 1
    assert gpu.amp and gpu.channels_last and gpu.device == "cuda"


def test_lr_factor_follows_budget_progress():
    s = Schedule(max_iters=1000, warmup_iters=0, kind="cosine")
    assert lr_factor(10, s, progress=0.0) == pytest.approx(1.0)
    assert lr_factor(10, s, progress=0.5) == pytest.approx(0.5)
    assert lr_factor(10, s, progress=1.5) == pytest.approx(0.0, abs=1e-12)
    st = Schedule(max_iters=100, kind="step", steps=(50,), gamma=0.1)
    assert lr_factor(0, st, progress=0.6) == pytest.approx(0.1)
    assert lr_factor(60, st) == pytest.approx(0.1) and lr_factor(40, st) == 1.0


def test_train_loop_time_budget_and_resume(monkeypatch):
    import baselines.common.train as tr

    now = [0.0]
    monkeypatch.setattr(tr.time, "perf_counter", lambda: now[0])
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_fn(m, batch):
        now[0] += 1.0  # every iteration takes one "second"
        return {"loss": m(batch).pow(2).mean()}

    def batches():
        while True:
            yield torch.ones(4, 2)

    saved = []
    clock = {"elapsed": 0.0}
    s = Schedule(max_iters=10_000, warmup_iters=0, kind="cosine")
    h = train_loop(model, batches(), loss_fn, opt, s, device=torch.device("cpu"),
                   time_budget=10.0, clock=clock, checkpoint=saved.append,
                   progress_bar=False)  # fmt: skip
    assert len(h) == 10 and saved == [10] and clock["elapsed"] == pytest.approx(10.0)
    assert h[0]["lr"] == pytest.approx(0.1) and h[-1]["lr"] == pytest.approx(
        0.1 * 0.5 * (1 + math.cos(math.pi * 0.9))
    )
    # resume halfway: the seconds already spent count, the schedule continues
    clock = {"elapsed": 5.0}
    h2 = train_loop(model, batches(), loss_fn, opt, s, device=torch.device("cpu"),
                    start_iter=5, time_budget=10.0, clock=clock, progress_bar=False)  # fmt: skip
    assert [r["iter"] for r in h2] == [5, 6, 7, 8, 9]
    assert h2[0]["lr"] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert h2[-1]["time"] == pytest.approx(10.0)
    # a finished run does nothing (and writes no checkpoint)
    saved.clear()
    assert train_loop(model, batches(), loss_fn, opt, s, device=torch.device("cpu"),
                      start_iter=10, time_budget=10.0, clock={"elapsed": 10.0},
                      checkpoint=saved.append, progress_bar=False) == []  # fmt: skip
    assert saved == []
    # the adaptive schedule resumed with a longer budget never starts above the rate of
    # the budget fraction already spent (it put the first iterations at the peak rate)
    clock = {"elapsed": 10.0}
    h3 = train_loop(model, batches(), loss_fn, opt, s, device=torch.device("cpu"),
                    start_iter=10, time_budget=20.0, clock=clock, progress_bar=False,
                    budget_schedule="adaptive")  # fmt: skip
    assert max(r["lr"] for r in h3) <= 0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 1e-12


def test_adaptive_budget_schedule_spends_high_rates_on_iterations(monkeypatch):
    # a machine that is 5x slower for the first half of the budget: the wall-clock
    # schedule has decayed to lr 0.5 after 100 of 600 iterations; the adaptive one keeps
    # it there until the faster iterations catch up, and both end at 0
    import baselines.common.train as tr

    now = [0.0]
    monkeypatch.setattr(tr.time, "perf_counter", lambda: now[0])

    def loss_fn(m, batch):
        now[0] += 5.0 if now[0] < 500 else 1.0
        return {"loss": m(batch).pow(2).mean()}

    def batches():
        while True:
            yield torch.ones(2, 2)

    lrs = {}
    for kind in ("wall", "adaptive"):
        now[0] = 0.0
        model = nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        h = train_loop(model, batches(), loss_fn, opt, Schedule(max_iters=10**6),
                       device=torch.device("cpu"), time_budget=1000.0, progress_bar=False,
                       budget_schedule=kind)  # fmt: skip
        lrs[kind] = [r["lr"] / 1e-3 for r in h]
        assert len(h) == 600 and lrs[kind][-1] < 0.01
    assert all(a >= b - 1e-9 for a, b in zip(lrs["adaptive"], lrs["wall"], strict=True))
    assert lrs["wall"][300] == pytest.approx(0.206, abs=0.01)
    assert lrs["adaptive"][300] == pytest.approx(0.5, abs=0.01)
    assert sum(lrs["adaptive"]) > 1.3 * sum(lrs["wall"])
    # never increases
    assert all(np.diff(lrs["adaptive"]) <= 1e-12)
