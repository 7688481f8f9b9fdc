"""Throughput of the Dask scale-out with 1 and 2 local workers: score and synth.

Usage::

    python benchmarks/scale.py [--images 300] [--synth-images 32] [--size 320x240]
                               [--workers 1 2]

score: the per-image stage (read once here; decode, sample, mask on the workers) of a
COCO-minival-like case cut to ``--images`` images (``benchmarks/_minival.py``, cached
under ``benchmarks/.cache/``), in images/s, on a ``LocalCluster`` of N single-threaded
worker processes (:func:`dpeval.distributed.local_cluster`: the workers' statistical
profiler off; it cost about 3x here), after one warm-up pass (worker start-up, imports
and the shipped lookup table are not counted; they are printed apart). The local
single-process run of the same stage is printed as the reference. Geodesic distances
and matching run on the client in every case and are not part of this number.

synth: ``generate_dataset(client=...)`` of ``--synth-images`` images at ``--size``,
images/s, after a 2-image warm-up (Numba kernels loaded on every worker).

The speed-up is throughput(N) / throughput(1). On a machine whose cores are shared with
other jobs the numbers are noisy and the speed-up is capped by the free cores: run it
twice and read the load average printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cut_case(case: Path, n_images: int, out: Path) -> tuple[Path, Path]:
    gt = json.loads((case / "gt.json").read_text())
    keep = {im["id"] for im in gt["images"][:n_images]}
    gt["images"] = [im for im in gt["images"] if im["id"] in keep]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    preds = [d for d in json.loads((case / "preds.json").read_text()) if d["image_id"] in keep]
    (out / "gt.json").write_text(json.dumps(gt))
    (out / "preds.json").write_text(json.dumps(preds))
    return out / "preds.json", out / "gt.json"


def _plan(preds_path: Path, gt_path: Path):
    from dpeval.evaluation.images import ImageOptions, ImagePlan
    from dpeval.evaluation.inputs import read_inputs
    from dpeval.evaluation.prepare import _gt_points, top_detections
    from dpeval.evaluation.regions import region_filter
    from dpeval.template import load_template

    tpl = load_template("open")
    p, g = read_inputs(str(preds_path), str(gt_path))
    keep_gt, keep_det = region_filter(g, p, "challenge2019")
    tops = top_detections(p, 20, keep_det)
    by_key: dict = {}
    for i, a in enumerate(g.annotations):
        if keep_gt[i]:
            by_key.setdefault((a.image_id, a.category_id), []).append(i)
    keys = sorted(set(by_key) | set(tops))
    return ImagePlan(g, p, _gt_points(g, tpl), by_key, tops, keys), tpl.uv8_lut, ImageOptions()


def bench_score(n_images: int, workers: list[int]) -> None:
    import distributed

    from dpeval.distributed import local_cluster
    from dpeval.evaluation.images import run_images
    from dpeval.evaluation.sharded import map_images

    sys.path.insert(0, str(HERE))
    from _minival import cached_case

    case = cached_case()
    with tempfile.TemporaryDirectory() as tmp:
        preds, gt = _cut_case(case, n_images, Path(tmp))
        plan, lut, opts = _plan(preds, gt)
        n = len(plan.keys)
        t0 = time.perf_counter()
        local = run_images(plan, lut, opts, 1, None)
        dt = time.perf_counter() - t0
        print(f"score, per-image stage, {n} images, {sum(len(r.didx) for r in local)} detections")
        print(f"  local, 1 process (reference)      {n / dt:7.1f} images/s")
        base = None
        for w in workers:
            t0 = time.perf_counter()
            with local_cluster(w) as cluster, distributed.Client(cluster) as client:
                start = time.perf_counter() - t0
                map_images(client, plan, lut, opts)  # warm-up: imports, LUT shipped
                t1 = time.perf_counter()
                got = map_images(client, plan, lut, opts)
                dt = time.perf_counter() - t1
            assert [r.key for r in got] == plan.keys
            rate = n / dt
            base = base or rate
            print(
                f"  dask, {w} worker(s)                 {rate:7.1f} images/s  "
                f"speed-up {rate / base:4.2f}x  (cluster start {start:.1f} s)"
            )


def bench_synth(n_images: int, size: str, workers: list[int]) -> None:
    import distributed

    from dpeval.distributed import local_cluster
    from dpeval.synth.generate import SynthConfig, generate_dataset
    from dpeval.synth.scene import SceneConfig

    w_px, h_px = (int(x) for x in size.split("x"))
    cfg = SynthConfig(scene=SceneConfig(width=w_px, height=h_px))
    print(f"synth, {n_images} images at {size}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(tmp, n_images=n_images, seed=0, config=cfg, workers=1)
    dt = time.perf_counter() - t0
    print(f"  local, 1 process (reference)      {n_images / dt:7.2f} images/s")
    base = None
    for w in workers:
        with (
            local_cluster(w) as cluster,
            distributed.Client(cluster) as client,
            tempfile.TemporaryDirectory() as tmp,
        ):
            generate_dataset(tmp, split="warm", n_images=2 * w, seed=0, config=cfg, client=client)
            t1 = time.perf_counter()
            generate_dataset(tmp, n_images=n_images, seed=0, config=cfg, client=client)
            dt = time.perf_counter() - t1
        rate = n_images / dt
        base = base or rate
        print(f"  dask, {w} worker(s)                 {rate:7.2f} images/s  "
              f"speed-up {rate / base:4.2f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=300, help="score: images of the case")
    ap.add_argument("--synth-images", type=int, default=32)
    ap.add_argument("--size", default="320x240", help="synth image size")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    bench_score(args.images, args.workers)
    bench_synth(args.synth_images, args.size, args.workers)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
