"""Benchmark of dpeval's geodesic engine against the usual alternatives.

Prints, for one mesh (the open template by default), time and accuracy of:
dpeval's engine, potpourri3d's heat method, scipy Dijkstra on the edge graph and
exact MMP (pygeodesic). Accuracy is measured against exact MMP over the same
pairs: every (source, vertex) pair of ``--sources`` exact fields. Then the cold
all-pairs table build, a warm 10 M pair lookup and the peak RSS.

    python benchmarks/geodesic.py [--mesh mesh.npz|.obj] [--sources 8] [--quick]

"(ext.)" marks numbers extrapolated from a measured per-field time.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fmt_t(sec: float, ext: bool = False) -> str:
    s = (
        f"{sec * 1e3:.1f} ms"
        if sec < 1
        else (f"{sec:.1f} s" if sec < 120 else f"{sec / 60:.1f} min")
    )
    return s + (" (ext.)" if ext else "")


def load_mesh(path: str | None):
    if path is None:
        from dpeval.template import load_template

        t = load_template("open")
        return np.asarray(t.vertices, np.float64), np.asarray(t.faces, np.int64), t
    if path.endswith(".npz"):
        z = np.load(path)
        return np.asarray(z["vertices"], np.float64), np.asarray(z["faces"], np.int64), None
    import trimesh

    m = trimesh.load(path, process=False, force="mesh")
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64), None


def errors(est: np.ndarray, truth: np.ndarray) -> tuple[str, str]:
    far = truth > 0.02
    rel = np.abs(est[far] - truth[far]) / truth[far]
    near = (truth <= 0.02) & (truth > 0)
    ab = np.abs(est[near] - truth[near]) * 1e3
    r = f"{rel.mean() * 100:.3f}% / {np.percentile(rel, 99) * 100:.3f}% / {rel.max() * 100:.2f}%"
    a = f"{ab.mean():.3f} / {ab.max():.3f}" if ab.size else "-"
    return r, a


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", help=".npz (vertices, faces) or mesh file; default: open template")
    ap.add_argument("--sources", type=int, default=8, help="exact MMP fields for the accuracy set")
    ap.add_argument("--quick", action="store_true", help="skip the 1 M pair and table runs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--table-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table_only:
        return table_only(args)

    import numba

    t0 = time.perf_counter()
    from dpeval.geodesic import GeodesicSolver, _kernels

    t_import = time.perf_counter() - t0
    v, f, template = load_mesh(args.mesh)
    nv = len(v)
    rng = np.random.default_rng(0)
    print("== machine")
    print(f"cpu cores (os.cpu_count): {os.cpu_count()}; numba threads: {numba.get_num_threads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    print(f"{platform.processor() or platform.machine()}; load average {os.getloadavg()}")
    print(f"mesh: {args.mesh or 'open template'}: {nv} vertices, {len(f)} faces")

    # ---------------------------------------------------------------- setup / compile
    t0 = time.perf_counter()
    solver = (
        GeodesicSolver(template, cache=False, mode="engine", threads=args.threads)
        if template is not None
        else GeodesicSolver.from_mesh(v, f, threads=args.threads)
    )
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver.field(0)
    solver.pairs(np.arange(1, 40), np.zeros(39, int))
    _kernels.lookup_condensed(
        np.zeros(3, np.uint16), np.array([1]), np.array([0]), 1.0, 65535, np.zeros(1)
    )
    t_compile = time.perf_counter() - t0
    print("\n== dpeval engine setup")
    print(
        f"import {fmt_t(t_import)}; setup {fmt_t(t_setup)}; "
        f"compile or load compiled kernels (first calls) {fmt_t(t_compile)}"
    )

    # ---------------------------------------------------------------- truth
    import pygeodesic.geodesic as pyg

    src = rng.choice(nv, args.sources, replace=False)
    t0 = time.perf_counter()
    exact_alg = pyg.PyGeodesicAlgorithmExact(v, f.astype(np.int32))
    t_exact_setup = time.perf_counter() - t0
    truth = []
    t0 = time.perf_counter()
    for s in src:
        d, _ = exact_alg.geodesicDistances(np.array([s]), None)
        truth.append(d)
    t_exact_field = (time.perf_counter() - t0) / len(src)
    truth = np.stack(truth)

    rows = []

    def add(name, setup, t_field, t_1k, t_1m, est, ext_1k=False, ext_1m=False):
        r, a = errors(est, truth) if est is not None else ("0 (reference)", "0")
        rows.append(
            (name, fmt_t(setup), fmt_t(t_field), fmt_t(t_1k, ext_1k), fmt_t(t_1m, ext_1m), r, a)
        )

    # pair batches: 1k and 1M random pairs (grouped by source = max id)
    a1k, b1k = rng.integers(0, nv, (2, 1000))
    n_src_1k = len(np.unique(np.maximum(a1k, b1k)[a1k != b1k]))
    a1m, b1m = rng.integers(0, nv, (2, 1_000_000))
    n_src_1m = len(np.unique(np.maximum(a1m, b1m)[a1m != b1m]))

    # dpeval engine
    est = np.stack([solver.field(int(s)) for s in src])
    t0 = time.perf_counter()
    for s in range(0, nv, max(1, nv // 50)):
        solver.field(s)
    t_field = (time.perf_counter() - t0) / len(range(0, nv, max(1, nv // 50)))
    t0 = time.perf_counter()
    solver.pairs(a1k, b1k)
    t_1k = time.perf_counter() - t0
    if args.quick:
        t_1m, ext = n_src_1m * t_field / numba.get_num_threads(), True
    else:
        t0 = time.perf_counter()
        solver.pairs(a1m, b1m)
        t_1m, ext = time.perf_counter() - t0, False
    add(
        "dpeval engine (face windows, 2 threads for batches)",
        t_setup,
        t_field,
        t_1k,
        t_1m,
        est,
        False,
        ext,
    )

    # exact MMP
    add(
        "pygeodesic exact MMP (1 thread)",
        t_exact_setup,
        t_exact_field,
        n_src_1k * t_exact_field,
        n_src_1m * t_exact_field,
        None,
        True,
        True,
    )

    # potpourri3d heat
    import potpourri3d as pp3d

    t0 = time.perf_counter()
    heat = pp3d.MeshHeatMethodDistanceSolver(v, f)
    t_heat_setup = time.perf_counter() - t0
    est = np.stack([heat.compute_distance(int(s)) for s in src])
    t0 = time.perf_counter()
    for s in range(0, nv, max(1, nv // 50)):
        heat.compute_distance(s)
    t_heat = (time.perf_counter() - t0) / len(range(0, nv, max(1, nv // 50)))
    t0 = time.perf_counter()
    hs = np.unique(np.maximum(a1k, b1k))
    for s in hs:
        heat.compute_distance(int(s))
    t_heat_1k = time.perf_counter() - t0
    add(
        "potpourri3d heat method (1 thread)",
        t_heat_setup,
        t_heat,
        t_heat_1k,
        n_src_1m * t_heat,
        est,
        False,
        True,
    )

    # scipy dijkstra on edges
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    t0 = time.perf_counter()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    w = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    g = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(nv, nv)).tocsr()
    g = g.maximum(g.T)
    t_dij_setup = time.perf_counter() - t0
    est = dijkstra(g, directed=False, indices=src)
    t0 = time.perf_counter()
    dijkstra(g, directed=False, indices=np.arange(0, nv, max(1, nv // 50)))
    t_dij = (time.perf_counter() - t0) / len(range(0, nv, max(1, nv // 50)))
    t0 = time.perf_counter()
    dijkstra(g, directed=False, indices=np.unique(np.maximum(a1k, b1k)))
    t_dij_1k = time.perf_counter() - t0
    add(
        "scipy Dijkstra on edges (1 thread)",
        t_dij_setup,
        t_dij,
        t_dij_1k,
        n_src_1m * t_dij,
        est,
        False,
        True,
    )

    print(
        f"\n== time and accuracy vs exact MMP ({args.sources} sources x all vertices; "
        "rel. error over pairs > 2 cm, abs error over pairs <= 2 cm)"
    )
    print(f"1k pairs touch {n_src_1k} sources, 1M pairs touch {n_src_1m}")
    head = (
        "method",
        "setup",
        "1 field",
        "1k pairs",
        "1M pairs",
        "rel err mean / p99 / max",
        "near abs mean / max [mm]",
    )
    widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(len(head))]
    for r in [head, *rows]:
        print(" | ".join(str(c).ljust(wd) for c, wd in zip(r, widths, strict=True)))

    if args.quick:
        return 0
    # table build and lookup in a fresh process, so that its peak RSS is its own
    print("\n== full condensed table (uint16): cold build, warm lookup (fresh process)", flush=True)
    cmd = [sys.executable, os.path.abspath(__file__), "--table-only"]
    if args.mesh:
        cmd += ["--mesh", args.mesh]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    import subprocess

    subprocess.run(cmd, check=True)
    print(f"\npeak RSS of this (comparison) process: {peak_rss_mb():.0f} MiB")
    return 0


def table_only(args: argparse.Namespace) -> int:
    """Cold table build + warm 10 M pair lookup; prints times and this process's peak RSS."""
    import numba

    from dpeval.geodesic import GeodesicSolver

    v, f, template = load_mesh(args.mesh)
    nv = len(v)
    rng = np.random.default_rng(1)
    cache = tempfile.mkdtemp(prefix="dpeval-bench-")
    try:

        def make(threads=args.threads):
            if template is not None:
                return GeodesicSolver(
                    template, cache=True, cache_dir=cache, mode="engine", threads=threads
                )
            return GeodesicSolver.from_mesh(v, f, cache=True, cache_dir=cache, threads=threads)

        tsolver = make()
        tsolver.field(0)  # compile / load kernels outside the timing
        rss0 = peak_rss_mb()
        if not tsolver._table_fits():
            print(
                f"table would take {tsolver.table_nbytes() / 2**20:.0f} MiB > cache limit: "
                "pairs are computed by source (see the 1M pairs row)"
            )
            return 0
        t0 = time.perf_counter()
        tsolver.precompute()
        t_build = time.perf_counter() - t0
        size = os.path.getsize(tsolver.cache_path()) / 2**20
        print(
            f"cold build (all {nv} sources, {numba.get_num_threads()} threads): {fmt_t(t_build)}; "
            f"file {size:.0f} MiB; scale {tsolver._scale * 1e3:.4f} mm/step",
            flush=True,
        )
        a10, b10 = rng.integers(0, nv, (2, 10_000_000), dtype=np.int32)
        tsolver.pairs(a10[:10], b10[:10])
        t0 = time.perf_counter()
        d10 = tsolver.pairs(a10, b10)
        t_warm = time.perf_counter() - t0
        del d10, tsolver  # one solver (one table mapping) at a time, as in an evaluation
        reopened = make()
        t0 = time.perf_counter()
        reopened.pairs(a10, b10)
        t_reopen = time.perf_counter() - t0
        print(
            f"warm lookup of 10 M pairs: {fmt_t(t_warm)}; new solver on the cached file "
            f"(open + spot check + 10 M pairs): {fmt_t(t_reopen)}"
        )
        print(
            f"peak RSS: {peak_rss_mb():.0f} MiB (after imports + compile: {rss0:.0f} MiB; "
            "includes the 10 M int32 id pairs and float64 results the caller holds)"
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
