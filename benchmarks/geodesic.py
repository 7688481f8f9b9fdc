"""Benchmark of dpeval's geodesic engine against the usual alternatives.

Prints, for one mesh (the open template by default), time and accuracy of:
dpeval's engine, potpourri3d's heat method, scipy Dijkstra on the edge graph and
exact MMP (pygeodesic). Accuracy is measured against exact MMP over the same
pairs: every (source, vertex) pair of ``--sources`` exact fields. Then the cold
all-pairs table build, a warm 10 M pair lookup and the peak RSS.

    python benchmarks/geodesic.py [--mesh mesh.npz|.obj] [--sources 8] [--quick]
    python benchmarks/geodesic.py --official-size [--sources 4] [--skip-table]

"(ext.)" marks numbers extrapolated from a measured per-field time.

``--official-size`` (issue 14) prints instead one row per mesh, each measured in a fresh
process: the open template and a 27,554-vertex refinement of it (the official
SMPL-subdivision size; see :func:`split_longest_edges`), with the time of one field and
of 1k pairs, the engine's error against exact MMP, the cold all-pairs table build, the
table size policy, the peak RSS, and the ratios between the two meshes. Results on the
project machine: ``benchmarks/README.md``.
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


OFFICIAL_NV = 27_554
"""Merged vertices of DensePose's SMPL subdivision (``smpl_27554``)."""


def split_longest_edges(v: np.ndarray, f: np.ndarray, n_target: int):
    """A partial one-step midpoint subdivision with exactly ``n_target`` vertices.

    The ``n_target - V`` longest edges get their midpoint (an edge is split for both of
    its faces, so the result is conforming: no T-junctions); a face with 1, 2 or 3 split
    edges becomes 2, 3 (the quad cut along its shorter diagonal) or 4 triangles,
    orientation kept. The surface is unchanged (exact geodesics equal the original
    mesh's at the original vertices); on the closed open template (13,380 vertices,
    40,134 edges) splitting 14,174 edges gives 27,554 vertices and 55,104 faces, the
    counts of the official mesh. A full one-step subdivision would give 53,514.
    """
    nv, nf = len(v), len(f)
    k = n_target - nv
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    uniq, inv = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True)
    if not 0 <= k <= len(uniq):
        raise SystemExit(f"cannot reach {n_target} vertices from {nv} with {len(uniq)} edges")
    length = np.linalg.norm(v[uniq[:, 0]] - v[uniq[:, 1]], axis=1)
    chosen = np.argsort(-length, kind="stable")[:k]
    mid = np.full(len(uniq), -1, np.int64)
    mid[chosen] = nv + np.arange(k)
    verts = np.vstack([v, 0.5 * (v[uniq[chosen, 0]] + v[uniq[chosen, 1]])])
    m = mid[inv.reshape(-1)].reshape(3, nf).T  # m[i, j]: midpoint of edge (f[i,j], f[i,j+1])

    def d2(i: int, j: int) -> float:
        return float(((verts[i] - verts[j]) ** 2).sum())

    out: list[list[int]] = []
    for face, mids in zip(f.tolist(), m.tolist(), strict=True):
        split = [j for j in range(3) if mids[j] >= 0]
        if not split:
            out.append(face)
            continue
        if len(split) == 3:
            a, b, c = face
            ab, bc, ca = mids
            out += [[a, ab, ca], [ab, b, bc], [ca, bc, c], [ab, bc, ca]]
            continue
        # rotate so that edge (a, b) is split (and (b, c) too when two are)
        r = split[0] if len(split) == 1 else ({0, 1, 2} - set(split)).pop() + 1
        a, b, c = (face * 2)[r % 3 : r % 3 + 3]
        ab, bc, _ = (mids * 2)[r % 3 : r % 3 + 3]
        if len(split) == 1:
            out += [[a, ab, c], [ab, b, c]]
        elif d2(a, bc) <= d2(ab, c):
            out += [[ab, b, bc], [a, ab, bc], [a, bc, c]]
        else:
            out += [[ab, b, bc], [a, ab, c], [ab, bc, c]]
    return verts, np.asarray(out, np.int64)


def print_machine() -> None:
    import numba

    print("== machine")
    print(f"cpu cores (os.cpu_count): {os.cpu_count()}; numba threads: {numba.get_num_threads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    print(f"{platform.processor() or platform.machine()}; load average {os.getloadavg()}")


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
    ap.add_argument(
        "--official-size",
        action="store_true",
        help=f"rows for the open template and a {OFFICIAL_NV:,}-vertex refinement of it",
    )
    ap.add_argument(
        "--skip-table",
        action="store_true",
        help="with --official-size: extrapolate the open template's table build too",
    )
    ap.add_argument("--table-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size-row", choices=("open", "official"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table_only:
        return table_only(args)
    if args.size_row:
        return size_row(args)
    if args.official_size:
        return official_size(args)

    import numba

    t0 = time.perf_counter()
    from dpeval.geodesic import GeodesicSolver, _kernels

    t_import = time.perf_counter() - t0
    v, f, template = load_mesh(args.mesh)
    nv = len(v)
    rng = np.random.default_rng(0)
    print_machine()
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
    name = "dpeval engine (face windows, 2 threads for batches)"
    add(name, t_setup, t_field, t_1k, t_1m, est, False, ext)

    # exact MMP
    name, t_ex = "pygeodesic exact MMP (1 thread)", t_exact_field
    add(name, t_exact_setup, t_ex, n_src_1k * t_ex, n_src_1m * t_ex, None, True, True)

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
    name = "potpourri3d heat method (1 thread)"
    add(name, t_heat_setup, t_heat, t_heat_1k, n_src_1m * t_heat, est, False, True)

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
    name = "scipy Dijkstra on edges (1 thread)"
    add(name, t_dij_setup, t_dij, t_dij_1k, n_src_1m * t_dij, est, False, True)

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


def size_mesh(kind: str) -> tuple[np.ndarray, np.ndarray]:
    v, f, _ = load_mesh(None)
    return (v, f) if kind == "open" else split_longest_edges(v, f, OFFICIAL_NV)


def size_row(args: argparse.Namespace) -> int:
    """One --official-size row, in a fresh process (so its peak RSS is its own): prints
    one JSON line. The field time is measured by the parent, both meshes alternating."""
    import json

    import numba
    import pygeodesic.geodesic as pyg

    from dpeval.geodesic import CACHE_LIMIT_BYTES, GeodesicSolver

    v, f = size_mesh(args.size_row)
    nv = len(v)
    rng = np.random.default_rng(0)
    solver = GeodesicSolver.from_mesh(v, f, cache=False, threads=args.threads)
    solver.field(0)  # compile / load kernels outside the timings
    src = rng.choice(nv, args.sources, replace=False)
    exact = pyg.PyGeodesicAlgorithmExact(v, f.astype(np.int32))
    t0 = time.perf_counter()
    truth = np.stack([exact.geodesicDistances(np.array([s]), None)[0] for s in src])
    t_mmp = (time.perf_counter() - t0) / len(src)
    rel, near = errors(np.stack([solver.field(int(s)) for s in src]), truth)
    a1k, b1k = rng.integers(0, nv, (2, 1000))
    t0 = time.perf_counter()
    solver.pairs(a1k, b1k)  # grouped by source, early-stopped fields (no table)
    t_1k = time.perf_counter() - t0
    nbytes = solver.table_nbytes()
    row = dict(V=nv, F=len(f), mmp_field=t_mmp, pairs_1k=t_1k, rel=rel, near=near)
    row.update(threads=args.threads or numba.get_num_threads(), table_mib=nbytes / 2**20)
    row.update(stored=nbytes <= CACHE_LIMIT_BYTES, build=None, file_mib=None)
    row["rss0"] = peak_rss_mb()
    if row["stored"] and not args.skip_table:
        cache = tempfile.mkdtemp(prefix="dpeval-bench-")
        try:
            tsolver = GeodesicSolver.from_mesh(v, f, cache=True, cache_dir=cache)
            t0 = time.perf_counter()
            tsolver.precompute()
            row["build"] = time.perf_counter() - t0
            row["file_mib"] = os.path.getsize(tsolver.cache_path()) / 2**20
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps({**row, "rss": peak_rss_mb(), "load": os.getloadavg()[0]}))
    return 0


def official_size(args: argparse.Namespace) -> int:
    """The open template and its 27,554-vertex refinement, side by side (issue 14)."""
    import json
    import subprocess

    from dpeval.geodesic import CACHE_LIMIT_BYTES, GeodesicSolver

    print_machine()
    # one field per mesh, alternating sources, in this process: both medians see the
    # same load (the machine may be shared)
    solvers = {k: GeodesicSolver.from_mesh(*size_mesh(k)) for k in ("open", "official")}
    times: dict[str, list[float]] = {k: [] for k in solvers}
    for sol in solvers.values():
        sol.field(0)
    for src in range(0, solvers["open"].n_vertices, solvers["open"].n_vertices // 60):
        for k, sol in solvers.items():
            t0 = time.perf_counter()
            sol.field(src)
            times[k].append(time.perf_counter() - t0)
    del solvers
    rows = {}
    for kind in ("open", "official"):
        cmd = [sys.executable, os.path.abspath(__file__), "--size-row", kind]
        cmd += ["--sources", str(args.sources)] + (["--skip-table"] if args.skip_table else [])
        cmd += ["--threads", str(args.threads)] if args.threads else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = rows[kind] = json.loads(out.strip().splitlines()[-1])
        r["field"] = float(np.median(times[kind]))
        r["build_ext"] = r["V"] * r["field"] / r["threads"]
    o, s = rows["open"], rows["official"]
    print(
        f"\n== dpeval engine, open template vs its {OFFICIAL_NV:,}-vertex refinement "
        f"(its {s['V'] - o['V']:,} longest edges split at their midpoint); exact MMP on "
        f"{args.sources} sources x all vertices; each row a fresh process (field times: "
        "both meshes alternating in one process)"
    )
    head = ("mesh", "V", "F", "1 field (median)", "1k pairs", "rel err mean / p99 / max")
    head += (
        "near abs mean / max [mm]",
        "cold table build",
        "uint16 table",
        "peak RSS (before table)",
        "load",
    )

    def cells(name: str, r: dict) -> tuple:
        build = fmt_t(r["build"]) if r["build"] is not None else fmt_t(r["build_ext"], True)
        size = f"{r['file_mib'] or r['table_mib']:.0f} MiB"
        table = size + (", cached" if r["stored"] else ": not stored")
        # fmt: off
        return (name, f"{r['V']:,}", f"{r['F']:,}", fmt_t(r["field"]), fmt_t(r["pairs_1k"]),
                r["rel"], r["near"], build, table, f"{r['rss']:.0f} MiB ({r['rss0']:.0f})",
                f"{r['load']:.2f}")
        # fmt: on

    def ratio(key: str, bottom: float | None = None) -> str:
        return f"{s[key] / (bottom or o[key]):.2f}x"

    table = [head, cells("open template", o), cells("open, edge-split to 27,554", s)]
    # fmt: off
    table.append(
        ("ratio 27,554 / open", ratio("V"), ratio("F"), ratio("field"), ratio("pairs_1k"), "",
         "", ratio("build_ext") + " (ext. / ext.)", ratio("table_mib"), ratio("rss0"), "")
    )
    # fmt: on
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    for r in table:
        print(" | ".join(str(c).ljust(wd) for c, wd in zip(r, widths, strict=True)))
    vr = s["V"] / o["V"]
    print(
        f"\nvertex ratio {vr:.3f} (squared {vr * vr:.3f}): a field should scale about "
        "linearly with V, the all-pairs table (V fields) about quadratically"
    )
    if o["build"] is not None:
        k = o["build"] / o["build_ext"]
        print(
            f"open template table: measured {fmt_t(o['build'])}; extrapolated from the "
            f"field time {fmt_t(o['build_ext'])} (V x 1 field / {o['threads']} threads); "
            f"the same factor {k:.2f} puts the 27,554 build at {fmt_t(k * s['build_ext'])}"
        )
    print(f"exact MMP, 1 field: open {fmt_t(o['mmp_field'])}, 27,554 {fmt_t(s['mmp_field'])}")
    n = s["V"]
    pairs = n * (n - 1) // 2
    print(f"\n== table size policy at V = {n:,} ({pairs:,} pairs)")
    print(f"full n x n float32 (detectron2 geodists): {n * n * 4 / 2**30:.2f} GiB")
    p32 = pairs * 4 / 2**30
    print(f"official condensed Pdist_matrix: float64 {2 * p32:.2f} GiB, float32 {p32:.2f} GiB")
    print(
        f"dpeval condensed uint16: {pairs * 2 / 2**20:.0f} MiB > the "
        f"{CACHE_LIMIT_BYTES / 2**20:.0f} MiB cache limit: nothing is stored; pairs are "
        "grouped by source and computed in each run (early-stopped fields, O(threads x V) "
        f"memory), up to V fields = {fmt_t(s['build_ext'])} (ext.) for a query touching "
        "every source"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
