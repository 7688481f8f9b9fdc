"""Benchmark of ``dpeval synth``: images/s of the full writer and per-stage times.

Usage::

    python benchmarks/synth.py [--images 300] [--workers 2] [--size 640x480] [--max-people 4]

The first call compiles (or loads) the Numba kernels; that time is reported apart.
Stage times are measured in this process on the first ``--stage-images`` images.
Other jobs on the machine make the numbers noisy: run it twice.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict

import numpy as np


def stage_times(n: int, cfg) -> dict[str, float]:
    from dpeval.synth.annotate import annotate_frame
    from dpeval.synth.generate import _models, image_rng
    from dpeval.synth.render import encode_image, postprocess
    from dpeval.synth.scene import sample_scene

    model, renderer = _models()
    acc: dict[str, float] = defaultdict(float)
    people = 0
    for i in range(n):
        rng = image_rng(0, "bench", i)
        t0 = time.perf_counter()
        scene = sample_scene(rng, cfg.scene, model)
        t1 = time.perf_counter()
        bodies = [p.vertices for p in scene.people]
        frame = renderer.render(
            scene.camera,
            bodies,
            np.stack([p.material for p in scene.people]),
            scene.light,
            scene.background,
        )
        t2 = time.perf_counter()
        annotate_frame(frame, scene, rng, cfg.annotate)
        t3 = time.perf_counter()
        img = postprocess(frame.image, rng)
        t4 = time.perf_counter()
        encode_image(img, "jpg")
        encode_image(frame.iuv, "png")
        t5 = time.perf_counter()
        people += len(scene.people)
        acc["scene (pose, skin, backdrop)"] += t1 - t0
        acc["render (raster, normals, shade)"] += t2 - t1
        acc["annotate (RLE, k-means, keypoints)"] += t3 - t2
        acc["camera effects"] += t4 - t3
        acc["encode (JPEG + IUV PNG)"] += t5 - t4
    out = {k: 1000 * v / n for k, v in acc.items()}
    out["bodies per image"] = people / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--max-people", type=int, default=4)
    ap.add_argument("--stage-images", type=int, default=60)
    args = ap.parse_args()
    from dpeval.synth.generate import SynthConfig, generate_dataset, render_sample
    from dpeval.synth.scene import SceneConfig

    w, h = (int(t) for t in args.size.split("x"))
    cfg = SynthConfig(scene=SceneConfig(width=w, height=h, max_people=args.max_people))
    t0 = time.perf_counter()
    render_sample(0, 0, "bench", cfg)
    print(f"first image (kernel compile or cache load): {time.perf_counter() - t0:.2f} s")
    for name, ms in stage_times(args.stage_images, cfg).items():
        unit = "" if name.startswith("bodies") else " ms/image"
        print(f"  {name:38s} {ms:7.2f}{unit}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(
            tmp, split="bench", n_images=args.images, seed=0, config=cfg, workers=args.workers
        )
        dt = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs)
    print(
        f"generate_dataset: {args.images} images {w}x{h}, max {args.max_people} people, "
        f"{args.workers} workers: {dt:.1f} s = {args.images / dt:.1f} images/s "
        f"({size / args.images / 1024:.0f} KiB/image on disk)"
    )


if __name__ == "__main__":
    main()
