"""Command line of the DensePose-RCNN baseline.

In: ``train`` (config name, dataset root, checkpoint directory) or ``predict``
(checkpoint, dataset root, split). Out: a checkpoint directory, or a challenge results
JSON for ``dpeval score``.

Examples
--------
``python -m baselines.rcnn train --config tiny --data ROOT --out CKPT``
``python -m baselines.rcnn predict --ckpt CKPT --data ROOT --split val --out preds.json``
"""

from __future__ import annotations

import argparse
import sys

from baselines.common.cli import add_overrides, add_run_options, config_overrides, pick
from baselines.common.train import default_checkpoint_dir

from .config import CONFIGS, get_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m baselines.rcnn", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and write CKPT_DIR/model.pt")
    t.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    t.add_argument("--data", required=True, help="dataset root")
    t.add_argument("--split", default="train")
    t.add_argument("--annotations", help="GT JSON (default ROOT/annotations/...)")
    t.add_argument("--image-dir", help="image directory (default ROOT/images/SPLIT)")
    t.add_argument(
        "--out", help="checkpoint directory (default ~/.cache/dpeval/baselines/rcnn-CONFIG)"
    )
    add_overrides(t)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, help="CPU threads (config default; 0 = torch's)")
    add_run_options(t)
    q = sub.add_parser("predict", help="write a challenge results JSON")
    q.add_argument("--ckpt", required=True, help="checkpoint directory")
    q.add_argument("--data", required=True, help="dataset root")
    q.add_argument("--split", default="val")
    q.add_argument("--annotations", help="GT JSON (image ids and sizes)")
    q.add_argument("--image-dir")
    q.add_argument("--out", required=True, help="output .json")
    q.add_argument("--score-threshold", type=float)
    q.add_argument("--max-dets", type=int, default=20)
    q.add_argument("--device", default="auto")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--batch-size", type=int, default=2)
    q.add_argument("--max-images", type=int)
    return p


# options passed on to train() / predict() as they are
_TRAIN_OPTIONS = ("split", "annotations", "image_dir", "device", "seed", "max_images", "resume")
_PREDICT_OPTIONS = ("split", "annotations", "image_dir", "score_threshold", "max_dets", "device",
                    "threads", "batch_size", "max_images")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        from .train import train

        cfg = get_config(args.config, **config_overrides(args))
        out = args.out or default_checkpoint_dir("rcnn", args.config)
        r = train(cfg, args.data, out, **pick(args, *_TRAIN_OPTIONS))
        if not r.losses:
            print(f"nothing to do: {out} has finished its schedule")
            return 0
        print(
            f"trained {r.iters} iterations in {r.seconds:.1f} s ({r.s_per_iter:.3f} s/iter); "
            f"loss first {r.losses[0]:.4f} last {r.losses[-1]:.4f} "
            f"(mean of first 5 {r.mean(True):.4f}, last 5 {r.mean(False):.4f}); "
            f"checkpoint {out}"
        )
        return 0
    from .predict import predict

    r = predict(args.ckpt, args.data, args.out, **pick(args, *_PREDICT_OPTIONS))
    print(
        f"wrote {r.n_detections} detections on {r.n_images} images to {r.path} in {r.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
