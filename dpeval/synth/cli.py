"""``dpeval synth``: the command-line front of :func:`dpeval.synth.generate_dataset`.

``add_synth_parser(subparsers)`` registers the sub-command on the ``dpeval`` parser;
the handler returns the exit code (0 on success; bad input raises ``ParamsError``,
which ``dpeval`` turns into exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time

from .._argtypes import positive_int
from .._output import progress_bar
from ..errors import ParamsError

__all__ = ["add_synth_parser", "parse_size", "run_synth"]


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)`` (width, height).

    Raises
    ------
    ParamsError
        If the text is not ``WIDTHxHEIGHT`` with positive integers.
    """
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ParamsError(f"synth: --size {text!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 16 or h < 16:
        raise ParamsError(f"synth: --size {text!r} is too small; use at least 16x16")
    return w, h


def parse_size_mix(text: str) -> tuple[float, float, float]:
    """``"0.2,0.4,0.4"`` -> ``(0.2, 0.4, 0.4)``: probabilities of small, medium, large.

    Raises
    ------
    ParamsError
        Unless three finite non-negative numbers summing to 1 (within 1e-6).
    """
    try:
        mix = tuple(float(p) for p in text.split(","))
    except ValueError:
        mix = ()
    if len(mix) != 3 or not all(math.isfinite(m) and m >= 0 for m in mix):
        raise ParamsError(
            f"synth: --size-mix {text!r} is not three non-negative numbers S,M,L, e.g. 0.2,0.4,0.4"
        )
    if abs(sum(mix) - 1.0) > 1e-6:
        raise ParamsError(f"synth: --size-mix {text!r} sums to {sum(mix):g}; it must sum to 1")
    return mix  # type: ignore[return-value]


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``dpeval synth`` on a ``dpeval`` sub-parser set; returns its parser."""
    sp = subparsers.add_parser(
        "synth",
        help="generate a synthetic DensePose-COCO dataset (images, IUV PNGs, JSON)",
        description="Render people posed on the open template with exact DensePose "
        "ground truth. Same seed, same bytes, whatever --workers.",
    )
    sp.add_argument("out_dir", help="output directory (images/, iuv/, annotations/)")
    sp.add_argument("--split", default="train", help="split name, e.g. train or val")
    sp.add_argument(
        "--images", type=positive_int, default=100, help="number of images (default 100)"
    )
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--size", default="640x480", help="image size WIDTHxHEIGHT (default 640x480)")
    sp.add_argument(
        "--max-people",
        type=positive_int,
        default=4,
        help="individual people per image: 1..K (default 4)",
    )
    sp.add_argument(
        "--crowd-prob",
        type=float,
        default=0.12,
        help="probability that an image also holds a crowd group (default 0.12)",
    )
    sp.add_argument(
        "--size-mix",
        default="0.2,0.4,0.4",
        metavar="S,M,L",
        help="probabilities of small, medium and large people (default 0.2,0.4,0.4)",
    )
    sp.add_argument(
        "--workers",
        type=positive_int,
        default=min(2, os.cpu_count() or 1),
        help="rendering processes (default: up to 2)",
    )
    sp.add_argument(
        "--scheduler",
        metavar="ADDRESS|local:N",
        help="render shards of images on a Dask cluster (address, scheduler file or "
        "local:N); OUT_DIR must be shared by every worker. Same bytes as a local run",
    )
    sp.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    sp.add_argument("--no-effects", action="store_true", help="no blur, noise or exposure changes")
    sp.add_argument("--preview", metavar="SHEET.png", help="also write a contact sheet")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    sp.set_defaults(func=run_synth)
    return sp


def run_synth(args: argparse.Namespace) -> list[str]:
    """Handler of ``dpeval synth``; returns the lines to print."""
    from .annotate import AnnotateConfig
    from .generate import SynthConfig, generate_dataset
    from .scene import SceneConfig

    w, h = parse_size(args.size)
    if not (math.isfinite(args.crowd_prob) and 0.0 <= args.crowd_prob <= 1.0):
        raise ParamsError(f"synth: --crowd-prob {args.crowd_prob} must be within [0, 1]")
    cfg = SynthConfig(
        scene=SceneConfig(
            width=w,
            height=h,
            max_people=args.max_people,
            crowd_prob=args.crowd_prob,
            size_mix=parse_size_mix(args.size_mix),
        ),
        annotate=AnnotateConfig(),
        image_format=args.format,
        effects=not args.no_effects,
    )
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            progress_bar(
                quiet=args.quiet, total=args.images, unit="img", desc=f"synth {args.split}"
            )
        )
        client = None
        if args.scheduler:
            from ..distributed import open_client

            client = stack.enter_context(open_client(args.scheduler))
        path = generate_dataset(
            args.out_dir,
            split=args.split,
            n_images=args.images,
            seed=args.seed,
            config=cfg,
            workers=args.workers,
            progress=bar.update if bar is not None else None,
            client=client,
        )
    dt = time.perf_counter() - t0
    if args.preview:
        from .preview import make_contact_sheet

        make_contact_sheet(path, args.preview)
    if args.quiet:
        return []
    import json

    doc = json.loads(path.read_text())
    dense = sum("dp_x" in a for a in doc["annotations"])
    crowd = sum(a["iscrowd"] for a in doc["annotations"])
    out = [
        f"{path}: {len(doc['images'])} images, {len(doc['annotations'])} annotations "
        f"({dense} dense, {crowd} crowd) in {dt:.1f} s = {args.images / dt:.1f} images/s"
    ]
    return out + ([f"preview: {args.preview}"] if args.preview else [])
