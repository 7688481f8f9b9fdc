"""Time CSE scoring on a DensePose-COCO-minival-sized case, and the nearest-vertex search
against its brute-force NumPy twin.

Usage: python benchmarks/cse.py [--images 1500] [--people 2243] [--points 130]
                                [--dets 20] [--vertices 27554] [--twin 1000]

Part 1 (fresh child process, peak RSS of that process): the whole ``score_cse`` (GT point
collection, mask IoUs, bilinear sampling of every detection that touches a GT, nearest
vertex, geodesics, GPS (both kappas), GPSm, IoU, RCP/AUC) on synthetic CSE ground truth
on the open template (13,380 vertices; its geodesic table is built once into
benchmarks/.cache and reused: "warm"), D = 16, detections jittered around the people
plus far-away ones, up to ``--dets`` per image. Head maps (2 + 16 channels at 112 x 112)
come from a pool of 64 so the case fits in memory; each detection reads one.

Part 2 (same process, same queries): the nearest-vertex search at ``--vertices`` vertices
(detectron2's SMPL mesh has 27,554) x 16 dims: BLAS screen + exact refine (default),
the Numba brute force, and the NumPy twin on ``--twin`` queries (extrapolated). The
machine is shared, so compare the ratios measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOISE = 0.05
"""Per-dimension noise of the pixel embeddings around 1.3 x a vertex embedding (|noise|
about 0.2): the k-d tree's speed depends on how close pixels lie to the vertices."""

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from cse import build_case
args = json.loads(sys.argv[2])
gt, preds, emb = build_case(**args)
import dpeval.cse.score as S
from dpeval.cse import MeshBank, score_cse
n_queries = [0, 0.0]
orig = S.nearest_vertices
def counting(q, e, **kw):
    n_queries[0] += len(q)
    t = time.perf_counter()
    out = orig(q, e, **kw)
    n_queries[1] += time.perf_counter() - t
    return out
S.nearest_vertices = counting
bank = MeshBank(embeddings={"open": emb})
bank.mesh("open").solver.precompute()  # warm: the cached table is opened, not rebuilt
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
s = score_cse(preds, gt, bank=bank)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "queries": n_queries[0], "nearest_s": n_queries[1],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": rss0,
                  "gt_points": int(s.metrics["points"]["n_points"]),
                  "AP": {k: round(v["AP"], 4) for k, v in s.metrics.items() if "AP" in v}}))
"""


def build_case(images: int, people: int, points: int, dets: int, seed: int = 0):
    """Synthetic minival-sized CSE ground truth (dict) and CsePredictions."""
    import numpy as np

    from dpeval.cse.demo import open_embeddings
    from dpeval.formats.cse import CseDetection, CsePredictions

    rng = np.random.default_rng(seed)
    emb = np.asarray(open_embeddings(16))
    nv = len(emb)
    pool = []
    for _ in range(64):
        c = rng.normal(size=(2, 112, 112)).astype(np.float32)
        c[1] += 1.0  # mostly foreground
        e = (emb[rng.integers(0, nv, 112 * 112)].T.reshape(16, 112, 112) * 1.3).astype(np.float32)
        e += rng.normal(scale=NOISE, size=e.shape).astype(np.float32)
        pool.append((c, e))
    owners = np.sort(rng.integers(0, images, people))
    imgs = [{"id": i + 1, "height": 480, "width": 640} for i in range(images)]
    anns, det_list = [], []
    for k, img in enumerate(owners):
        w, h = rng.uniform(40, 300), rng.uniform(80, 400)
        x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
        anns.append(
            {
                "id": k + 1,
                "image_id": int(img) + 1,
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h * 0.6,
                "iscrowd": 0,
                "dp_x": rng.uniform(0, 255, points).tolist(),
                "dp_y": rng.uniform(0, 255, points).tolist(),
                "dp_vertex": rng.integers(0, nv, points).tolist(),
                "ref_model": "open",
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            }
        )
    by_img: dict[int, list[dict]] = {}
    for a in anns:
        by_img.setdefault(a["image_id"], []).append(a)
    for img in range(1, images + 1):
        people_here = by_img.get(img, [])
        n = int(rng.integers(max(1, len(people_here)), dets + 1))
        for j in range(n):
            if people_here and j < 3 * len(people_here):
                x, y, w, h = people_here[j % len(people_here)]["bbox"]
                box = [
                    x + rng.normal(0, 8),
                    y + rng.normal(0, 8),
                    w * rng.uniform(0.8, 1.2),
                    h * rng.uniform(0.8, 1.2),
                ]
            else:
                box = [
                    rng.uniform(0, 500),
                    rng.uniform(0, 350),
                    rng.uniform(20, 140),
                    rng.uniform(20, 130),
                ]
            c, e = pool[int(rng.integers(0, len(pool)))]
            det_list.append(
                CseDetection(
                    image_id=img,
                    category_id=1,
                    bbox=np.array(box, float),
                    score=float(rng.uniform()),
                    shape=(2, 16, 112, 112),
                    index=len(det_list),
                    _maps=(c, e),
                )
            )
    gt = {"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    return gt, CsePredictions(tuple(det_list), source="<bench>"), emb


def smpl_sized_embeddings(vertices: int):
    """Spectral embeddings of the open template plus normalised edge midpoints up to
    ``vertices`` rows: a smooth 2-D manifold in 16-D, as LBO-based CSE embeddings are."""
    import numpy as np

    from dpeval.cse import normalize_embeddings
    from dpeval.cse.demo import open_embeddings
    from dpeval.template import load_template

    t = load_template("open")
    e = np.asarray(open_embeddings(16))
    f = t.faces
    edges = np.unique(
        np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0
    )
    rng = np.random.default_rng(0)
    mid = edges[rng.choice(len(edges), max(vertices - len(e), 0), replace=False)]
    return normalize_embeddings(np.concatenate([e, (e[mid[:, 0]] + e[mid[:, 1]]) / 2]))


def nearest_comparison(n_queries: int, vertices: int, twin: int, sample: int) -> dict:
    import numpy as np

    from dpeval.cse import _reference, nearest_vertices

    rng = np.random.default_rng(1)
    verts = smpl_sized_embeddings(vertices)
    m = min(sample, n_queries)
    q = (verts[rng.integers(0, vertices, m)] * 1.3 + rng.normal(scale=NOISE, size=(m, 16))).astype(
        np.float32
    )
    for meth in ("blas", "numba", "kdtree"):
        nearest_vertices(q[:64], verts, method=meth)  # compile / warm up
    out = {}
    scale = n_queries / m
    res = {}
    for meth in ("blas", "kdtree", "auto", "numba"):
        t = time.perf_counter()
        res[meth] = nearest_vertices(q, verts, method=meth)
        out[f"{meth}_s"] = (time.perf_counter() - t) * scale
    a, b = res["blas"], res["numba"]
    out["agree_kdtree"] = bool((res["kdtree"] == a).all() and (res["auto"] == a).all())
    t = time.perf_counter()
    c = _reference.nearest_vertices(q[:twin], verts)
    out["twin_s_per_query"] = (time.perf_counter() - t) / twin
    out["twin_s_extrapolated"] = out["twin_s_per_query"] * n_queries
    out["agree_blas_numba"] = bool((a == b).all())
    out["agree_twin"] = bool((a[:twin] == c).all())
    out["queries"] = n_queries
    out["sample"] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--people", type=int, default=2243)
    ap.add_argument("--points", type=int, default=130)
    ap.add_argument("--dets", type=int, default=20)
    ap.add_argument("--vertices", type=int, default=27554)
    ap.add_argument("--twin", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=50000, help="queries timed in part 2")
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    env = dict(os.environ, DPEVAL_CACHE_DIR=str(HERE / ".cache" / "dpeval"))
    case = {"images": a.images, "people": a.people, "points": a.points, "dets": a.dets}
    runs = []
    for label in ("first (table built if absent)", "warm", "warm again")[: a.runs]:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(HERE), json.dumps(case)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if r.returncode:
            sys.exit(r.stderr)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        runs.append(res)
        print(
            f"score_cse {label:<32} {res['seconds']:7.1f} s "
            f"(nearest vertex {res['nearest_s']:.1f} s)"
            f"   peak RSS {res['peak_rss_mb']:6.0f} MB   ({res['queries']} queries, "
            f"{res['gt_points']} GT points)"
        )
    print(f"APs: {runs[-1]['AP']}")
    n = runs[-1]["queries"]
    c = nearest_comparison(n, a.vertices, a.twin, a.sample)
    print(
        f"\nnearest vertex, {n} queries x {a.vertices} vertices x 16 dims (this process; "
        f"{c['sample']} timed, scaled to {n}):"
    )
    print(f"  BLAS screen + exact refine  {c['blas_s']:7.1f} s")
    print(f"  k-d tree + exact window     {c['kdtree_s']:7.1f} s")
    print(f"  auto (default)              {c['auto_s']:7.1f} s")
    print(f"  Numba brute force           {c['numba_s']:7.1f} s")
    print(
        f"  NumPy twin ({a.twin} timed)    {c['twin_s_extrapolated']:7.1f} s   "
        f"({1e3 * c['twin_s_per_query']:.2f} ms/query)"
    )
    print(
        f"  agree with blas: numba {c['agree_blas_numba']}, kdtree/auto {c['agree_kdtree']}, "
        f"twin {c['agree_twin']}"
    )
    est = runs[-1]["seconds"] - runs[-1]["nearest_s"] + c["auto_s"]
    print(
        f"\nwarm total with a {a.vertices}-vertex mesh (run - its search + this search): "
        f"{est:.1f} s"
    )


if __name__ == "__main__":
    main()
