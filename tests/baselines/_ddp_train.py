"""Run by ``torchrun`` in test_ddp.py: train the tiny FCN, dump this rank's history and
the sum of its final weights.

usage: _ddp_train.py DATA OUT BATCH ITERS
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import baselines.fcn.train as fcn_train
from baselines.fcn.config import get_config

torch.set_num_threads(1)
data, out, batch, iters = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
models = []
wrap = fcn_train.wrap_model
fcn_train.wrap_model = lambda model, ctx: models.append(model) or wrap(model, ctx)
cfg = get_config("tiny", batch_size=batch, iters=iters)
result = fcn_train.train(cfg, data, out, split="train", device="cpu", seed=0, progress=False)
rank = int(os.environ.get("RANK", "0"))
weights = torch.cat([p.detach().double().ravel() for p in models[0].parameters()])
record = {"history": result.history, "weights": weights.tolist()}
(out / f"history-{rank}.json").write_text(json.dumps(record))
