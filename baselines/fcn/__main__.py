"""Command line of the FCN baseline: ``python -m baselines.fcn {train,predict} ...``.

In: command-line arguments. Out: a checkpoint directory (train) or prediction files
(predict), and a few lines on stdout (first/last loss, counts, timings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..common.cli import add_overrides, add_run_options, config_overrides, pick
from ..common.train import default_checkpoint_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m baselines.fcn", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on a DensePose-Synth split (needs IUV maps)")
    t.add_argument("--config", default="tiny", choices=["tiny", "full", "cpu", "gpu"])
    t.add_argument("--data", required=True, type=Path, help="dataset root (dpeval synth)")
    t.add_argument("--split", default="train")
    t.add_argument("--annotations", type=Path, help="ground-truth JSON (default: synth layout)")
    t.add_argument(
        "--out",
        type=Path,
        help="checkpoint directory (default ~/.cache/dpeval/baselines/fcn-<config>)",
    )
    add_overrides(t, iters_help="override the config's iteration count")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add_run_options(t)
    q = sub.add_parser("predict", help="write instance results (and dense maps)")
    q.add_argument("--ckpt", required=True, type=Path, help="checkpoint directory")
    q.add_argument("--data", required=True, type=Path, help="dataset root")
    q.add_argument("--split", default="val")
    q.add_argument(
        "--annotations",
        type=Path,
        help="DensePose-COCO JSON listing the images (default: synth layout)",
    )
    q.add_argument("--images", type=Path, help="image directory (default ROOT/images/SPLIT)")
    q.add_argument("--out", required=True, type=Path, help="instance results JSON")
    q.add_argument("--dense-out", type=Path, help="also write image-level IUV PNGs here")
    q.add_argument("--device", default="auto")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--min-area", type=int)
    q.add_argument("--max-dets", type=int)
    q.add_argument("--max-images", type=int)
    return p


# options passed on to train() / predict() as they are
_TRAIN_OPTIONS = ("split", "annotations", "device", "seed", "max_images", "resume")
_PREDICT_OPTIONS = ("split", "dense_out", "annotations", "device", "threads", "min_area",
                    "max_dets", "max_images")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        from .config import get_config
        from .train import train

        cfg = get_config(args.config, **config_overrides(args))
        out = args.out or default_checkpoint_dir("fcn", args.config)
        res = train(cfg, args.data, out, **pick(args, *_TRAIN_OPTIONS))
        h = res.history
        if not h:
            print(f"nothing to do: {res.checkpoint} has finished its schedule")
            return 0
        print(
            f"trained {len(h)} iterations in {res.seconds:.1f} s "
            f"({res.seconds / max(len(h), 1):.2f} s/it)"
        )
        print(
            f"first loss {h[0]['loss']:.4f}  last loss {h[-1]['loss']:.4f}  "
            f"(mean first 5 {res.mean_loss(first=5):.4f}, last 5 {res.mean_loss(last=5):.4f})"
        )
        print(f"checkpoint {res.checkpoint}")
        return 0
    from .predict import predict

    res = predict(
        args.ckpt,
        args.data,
        args.out,
        image_dir=args.images,
        **pick(args, *_PREDICT_OPTIONS),
    )
    print(
        f"{res.n_instances} instances on {res.n_images} images in {res.seconds:.1f} s "
        f"-> {res.instances_path}"
    )
    if res.dense_dir is not None:
        print(f"dense maps -> {res.dense_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
