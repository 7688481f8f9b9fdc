"""Run by ``torchrun`` in test_ddp.py: train a tiny baseline, dump this rank's history
and its final weights.

usage: _ddp_train.py {fcn,rcnn} DATA OUT BATCH ITERS
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import torch

kind, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
batch, iters = int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
train_mod = importlib.import_module(f"baselines.{kind}.train")
config_mod = importlib.import_module(f"baselines.{kind}.config")
models = []
wrap = train_mod.wrap_model
train_mod.wrap_model = lambda model, ctx: models.append(model) or wrap(model, ctx)
cfg = config_mod.get_config("tiny", batch_size=batch, iters=iters)
result = train_mod.train(cfg, data, out, split="train", device="cpu", seed=0, progress=False)
rank = int(os.environ.get("RANK", "0"))
weights = torch.cat([p.detach().double().ravel() for p in models[0].parameters()])
record = {"history": result.history, "weights": weights.tolist()}
(out / f"history-{rank}.json").write_text(json.dumps(record))
