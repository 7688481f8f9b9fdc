"""Score a trained baseline's predictions and add them to a leaderboard store.

In: a checkpoint directory (``config.json`` and ``loss_log.jsonl`` written by
``python -m baselines.fcn|rcnn train``), the predictions it produced, the ground truth.
Out: one new entry in the store (default: the project's ``leaderboard/``) holding the full
``dpeval score`` output with bootstrap intervals, plus a ``training`` record: the model,
the config, iterations, first/last training loss, training seconds, the training
hardware and the git commit of this checkout.

Usage::

    python -m baselines.publish --model rcnn --ckpt CKPT --preds preds.json \\
        --gt ROOT/annotations/densepose_synth_val.json --split synth160-val \\
        --name "DensePose-RCNN (tiny, CPU)" [--store leaderboard] [--hardware "1 thread ..."]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from dpeval.errors import FormatError

MODELS = {
    "fcn": "DenseReg-style FCN (baselines/fcn)",
    "rcnn": "DensePose-RCNN (baselines/rcnn)",
}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_record(model: str, ckpt: str | Path, hardware: str | None = None) -> dict[str, Any]:
    """What went into a checkpoint, from its ``config.json`` and ``loss_log.jsonl``.

    Raises
    ------
    FormatError
        If either file is missing or unreadable.
    """
    ckpt = Path(ckpt)
    cfg_path, log_path = ckpt / "config.json", ckpt / "loss_log.jsonl"
    try:
        config = json.loads(cfg_path.read_text())
        rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise FormatError(
            f"{ckpt}: cannot read config.json / loss_log.jsonl ({e}); point --ckpt at the "
            "directory written by 'python -m baselines.<model> train --out DIR'"
        ) from None
    if not rows:
        raise FormatError(f"{log_path}: no training iterations logged")
    k = max(1, min(20, len(rows) // 10))
    mean = lambda rs: round(sum(r["loss"] for r in rs) / len(rs), 4)  # noqa: E731
    return {
        "model": MODELS[model],
        "config_name": config.get("name"),
        "config": config,
        "iterations": int(rows[-1]["iter"]) + 1,
        "loss_first": mean(rows[:k]),
        "loss_last": mean(rows[-k:]),
        "loss_window": k,
        "train_seconds": round(float(rows[-1].get("time", 0.0)), 1),
        "hardware": hardware or f"{_cpu_name()}, {os.cpu_count()} cores visible",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--ckpt", required=True, help="checkpoint directory of the run")
    ap.add_argument("--preds", required=True, help="instance predictions (challenge JSON)")
    ap.add_argument("--gt", required=True, help="ground-truth JSON they are scored against")
    ap.add_argument("--split", required=True, help="split name of the leaderboard group")
    ap.add_argument("--name", required=True, help="entry name")
    ap.add_argument("--description", default="")
    ap.add_argument("--store", default="leaderboard")
    ap.add_argument("--hardware", help="training hardware (default: this machine's CPU)")
    ap.add_argument("--resamples", type=int, default=200)
    args = ap.parse_args(argv)

    from dpeval.leaderboard import submit

    entry = submit(
        args.preds, args.gt, store=args.store, name=args.name, team="dpeval baselines",
        url="", description=args.description, split=args.split, boxes="detected",
        resamples=args.resamples, git_commit=_git_commit(),
        training=training_record(args.model, args.ckpt, args.hardware),
    )  # fmt: skip
    m = entry.data["score"]["metrics"]
    print(f"wrote {entry.path}")
    print(
        f"gps_paper AP {m['gps_paper']['AP']:.4f}  gps_perpart AP {m['gps_perpart']['AP']:.4f}  "
        f"gpsm AP {m['gpsm']['AP']:.4f}  AUC10 {m['points']['AUC10']:.4f}  "
        f"AUC30 {m['points']['AUC30']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
