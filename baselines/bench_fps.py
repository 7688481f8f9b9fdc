"""Inference speed of the two baselines, batch 1, at the paper's two input sizes.

In: a config name (``tiny`` or ``full``) or checkpoints, a device. Out: a table of
frames per second printed to stdout (and ``--json`` for the record), comparable with the
DensePose paper's GTX 1080 numbers (DensePose-RCNN 20-26 fps at 240x320, 4-5 fps at
800x1100).

What is timed: one normalised image tensor already on the device goes through the
whole network and yields, per image, the IUV outputs the predictor writes: for the FCN
the dense part logits and U/V maps at input size; for the RCNN backbone, RPN, box head,
NMS and the DensePose head on the kept boxes. Decoding the outputs into PNGs is not
timed (it runs on the host in the writer). Without ``--ckpt`` the weights are random and
the RCNN's score threshold is 0, so it keeps the evaluator's maximum of 20 detections
per image: a pessimistic load for the DensePose head (real images hold 1-3 people).

Usage::

    python -m baselines.bench_fps --config full --device cuda
    python -m baselines.bench_fps --config tiny --device cpu --iters 5
    python -m baselines.bench_fps --fcn-ckpt DIR --rcnn-ckpt DIR --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

SIZES = ((240, 320), (800, 1100))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(kind: str, config: str, ckpt: str | None, device: torch.device) -> torch.nn.Module:
    if kind == "fcn":
        from baselines.fcn.config import get_config
        from baselines.fcn.model import DenseRegFCN
        from baselines.fcn.predict import load_model

        if ckpt:
            return load_model(ckpt, device)[0]
        return DenseRegFCN(get_config(config)).to(device).eval()
    from baselines.rcnn.config import get_config as rcnn_config
    from baselines.rcnn.model import DensePoseRCNN
    from baselines.rcnn.train import load_model as rcnn_load

    if ckpt:
        model = rcnn_load(ckpt, str(device))
    else:
        model = DensePoseRCNN(rcnn_config(config)).to(device).eval()
        model.cfg = model.cfg.replace(test_score_thresh=0.0, max_dets=20)
    return model


def _time(
    kind: str,
    model: torch.nn.Module,
    hw: tuple[int, int],
    device: torch.device,
    iters: int,
    warmup: int,
    amp: bool,
) -> dict[str, Any]:
    h, w = hw
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    x = torch.randn(1, 3, ph, pw, device=device)
    metas = [{"height": h, "width": w, "image_id": 1}]
    ctx = (
        torch.autocast(device.type, dtype=torch.float16)
        if amp and device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    n_dets = 0

    def run() -> None:
        nonlocal n_dets
        if kind == "fcn":
            model(x)
        else:
            r = model(x, metas)
            n_dets = len(r[0]["boxes"])

    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            run()
        _sync(device)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return {
        "model": kind,
        "input": f"{h}x{w}",
        "median_ms": round(med * 1e3, 2),
        "fps": round(1.0 / med, 1),
        "detections": n_dets if kind == "rcnn" else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="full", help="tiny or full (random weights)")
    ap.add_argument("--fcn-ckpt", help="trained FCN checkpoint directory")
    ap.add_argument("--rcnn-ckpt", help="trained RCNN checkpoint directory")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    ap.add_argument("--amp", action="store_true", help="float16 autocast on CUDA")
    ap.add_argument("--models", default="fcn,rcnn")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True
    rows = []
    for kind in args.models.split(","):
        ckpt = args.fcn_ckpt if kind == "fcn" else args.rcnn_ckpt
        model = _build(kind, args.config, ckpt, device)
        for hw in SIZES:
            rows.append(_time(kind, model, hw, device, args.iters, args.warmup, args.amp))
            print(
                f"{kind:5s} {rows[-1]['input']:>9s}  {rows[-1]['median_ms']:9.2f} ms  "
                f"{rows[-1]['fps']:8.1f} fps  dets={rows[-1]['detections']}",
                flush=True,
            )
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    meta = {
        "device": dev_name or platform.machine(),
        "torch": torch.__version__,
        "config": args.config,
        "amp": args.amp,
        "iters": args.iters,
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(meta, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
