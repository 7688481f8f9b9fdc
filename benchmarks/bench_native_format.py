"""Read speed / size of dpeval-npz vs challenge JSON on a minival-like case.

Usage: python benchmarks/bench_native_format.py [N]
(N maps, default 1000; numbers scaled to 30,000 detections)
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dpeval.formats import load_predictions, save_predictions
from dpeval.formats.model import Detection, Predictions


def synth_iuv(rng, h, w):
    """Realistic-ish box IUV map: elliptic silhouette, Voronoi part blobs, smooth UV."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2, w / 2
    fg = ((yy - cy) / (0.48 * h)) ** 2 + ((xx - cx) / (0.42 * w)) ** 2 < 1.0
    k = 12
    sy = rng.uniform(0, h, k).astype(np.float32)
    sx = rng.uniform(0, w, k).astype(np.float32)
    parts = rng.choice(np.arange(1, 25), k, replace=False)
    d = (yy[None] - sy[:, None, None]) ** 2 + (xx[None] - sx[:, None, None]) ** 2
    lab = np.argmin(d, axis=0)
    part_img = np.where(fg, parts[lab], 0).astype(np.uint8)
    a = rng.uniform(-1, 1, (k, 3)).astype(np.float32)
    u = 0.5 + 0.5 * np.sin(a[lab, 0] * yy / h * 3 + a[lab, 1] * xx / w * 3 + a[lab, 2])
    v = 0.5 + 0.5 * np.cos(a[lab, 1] * yy / h * 3 - a[lab, 0] * xx / w * 3 + a[lab, 2])
    U = np.where(fg, np.clip(u * 255, 0, 255), 0).astype(np.uint8)
    V = np.where(fg, np.clip(v * 255, 0, 255), 0).astype(np.uint8)
    return np.stack([part_img, U, V])


N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SCALE = 30000 / N
rng = np.random.default_rng(0)


def resampled_real(rng, n):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    src = load_predictions(str(shared / "densepose_challenge_example_results.json"))
    maps = [np.asarray(d.load_iuv()) for d in src.detections if d.iuv_shape[1] > 100]
    out = []
    for _ in range(n):
        m = maps[rng.integers(len(maps))]
        h, w = int(rng.integers(200, 300)), int(rng.integers(120, 180))
        ch = [Image.fromarray(np.ascontiguousarray(m[c])) for c in range(3)]
        i = np.asarray(ch[0].resize((w, h), Image.NEAREST))
        u = np.asarray(ch[1].resize((w, h), Image.BILINEAR))
        v = np.asarray(ch[2].resize((w, h), Image.BILINEAR))
        out.append(np.stack([i, np.where(i > 0, u, 0), np.where(i > 0, v, 0)]).astype(np.uint8))
    return out


for label, maps in (
    (
        "synthetic blobs",
        [
            synth_iuv(rng, int(rng.integers(200, 300)), int(rng.integers(120, 180)))
            for _ in range(N)
        ],
    ),
    ("resampled real maps", resampled_real(rng, N)),
):
    dets = tuple(
        Detection(
            image_id=int(k // 20),
            category_id=1,
            bbox=np.array([10.5, 20.25, m.shape[2], m.shape[1]], float),
            score=float(rng.random()),
            iuv_shape=m.shape,
            index=k,
            _iuv=m,
        )
        for k, m in enumerate(maps)
    )
    preds = Predictions("instances", dets)
    raw = sum(m.nbytes for m in maps)
    print(f"== {label}: {N} maps, mean {raw / N / 3:.0f} px, scaled x{SCALE:g} to 30k detections")
    d = tempfile.mkdtemp()
    for fmt, ext in (("challenge-json", ".json"), ("dpeval-npz", ".npz"), ("d2-pickle", ".pkl")):
        path = os.path.join(d, "p" + ext)
        t = time.perf_counter()
        save_predictions(preds, path, fmt)
        tw = time.perf_counter() - t
        t = time.perf_counter()
        p = load_predictions(path)
        tl = time.perf_counter() - t
        t = time.perf_counter()
        for x in p.detections:
            x.load_iuv()
        td = time.perf_counter() - t
        size = os.path.getsize(path)
        print(
            f"{fmt:15s} {size / N / 1e3:7.1f} kB/map  30k: {size * SCALE / 1e6:7.0f} MB  "
            f"open {tl * SCALE:6.1f} s  decode all {td * SCALE:6.1f} s  "
            f"read total {(tl + td) * SCALE:6.1f} s  write {tw * SCALE:6.0f} s"
        )
    print(f"{'raw uint8':15s} {raw / N / 1e3:7.1f} kB/map  30k: {raw * SCALE / 1e6:7.0f} MB")
