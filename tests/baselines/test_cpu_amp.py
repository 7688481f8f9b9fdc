"""bfloat16 autocast on the CPU (``cpu_amp``): when it is on, what it changes, and that a
model still learns under it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from baselines.common import train as common_train
from baselines.common.train import Schedule, resolve_cpu_amp, train_loop
from baselines.fcn.config import get_config
from baselines.fcn.model import DenseRegFCN


def test_cpu_amp_resolution(monkeypatch):
    assert resolve_cpu_amp("on") and not resolve_cpu_amp("off")
    monkeypatch.setattr(common_train, "cpu_bf16_available", lambda: False)
    assert not resolve_cpu_amp("auto")
    monkeypatch.setattr(common_train, "cpu_bf16_available", lambda: True)
    assert resolve_cpu_amp("auto")
    with pytest.raises(ValueError, match="cpu_amp must be"):
        resolve_cpu_amp("yes")
    assert get_config("cpu").cpu_amp == "auto" and get_config("tiny").cpu_amp == "off"


@pytest.mark.parametrize("amp", [False, True])
def test_train_loop_runs_convs_in_bf16_only_when_asked(amp):
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("tiny"), width=8, fpn_channels=16, head_channels=16)
    model = DenseRegFCN(cfg)
    seen = []
    model.predictor.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(2, 3, 32, 32)
    target = torch.where(x[:, 0] > 0, 3, 7)  # learnable from the input

    def loss_fn(m, batch):
        out = m(batch)
        return {"ce": torch.nn.functional.cross_entropy(out["part_logits"].float(), target)}

    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    sched = Schedule(40, 0, kind="constant")
    cpu = torch.device("cpu")
    hist = train_loop(model, iter([x] * 40), loss_fn, opt, sched, device=cpu, amp=amp,
                      progress_bar=False)  # fmt: skip
    assert set(seen) == {torch.bfloat16 if amp else torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    assert hist[-1]["ce"] < 0.6 * hist[0]["ce"], (hist[0]["ce"], hist[-1]["ce"])
