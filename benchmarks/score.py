"""Time ``dpeval score --metric all`` as a user meets it: first-ever, cold, warm.

Usage: python benchmarks/score.py [--images 1500] [--people 2300] [--workers 2]
       [--skip-cold] [--repeat 2]

Prints the table of issue 14 for the current code, each row a fresh process running the
command line (``dpeval score PREDS GT --metric all -q``), wall time and peak RSS:

* the README's example (``examples/``): first-ever run (empty Numba cache, empty dpeval
  cache: every kernel it uses is compiled) and warm;
* a COCO-minival-sized case on the open template (built once into benchmarks/.cache/ by
  ``_minival.py``): first-ever (empty Numba and dpeval caches: kernels compiled and the
  geodesic table built), cold (kernels cached, no geodesic table), warm (both cached).

``--skip-cold`` leaves out the two minival rows that build the geodesic table (a minute
or more on 2 cores). The load average is printed with each row: the machine may be
shared, so compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from dpeval.cli import main
t_import = time.perf_counter() - t0
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "import_s": t_import,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(argv: list[str], numba_cache: str, dpeval_cache: str) -> dict:
    """One fresh ``dpeval`` process; its wall time (measured outside) and peak RSS."""
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache, "DPEVAL_CACHE_DIR": dpeval_cache}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # import the installed dpeval, not a checkout by accident
    )
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise SystemExit(f"dpeval {' '.join(argv)} exited {r['rc']}: {out.stderr[-500:]}")
    r["wall"] = wall
    r["load"] = load
    return r


def row(label: str, r: dict) -> None:
    print(
        f"| {label:<52} | {r['wall']:7.2f} s | {r['peak_rss_mb']:6.0f} MB | "
        f"{r['import_s']:5.2f} s | {r['load']:5.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--people", type=int, default=2300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="warm runs per case")
    ap.add_argument("--skip-cold", action="store_true", help="no geodesic table builds")
    ap.add_argument("--skip-minival", action="store_true", help="the README example only")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    ex = ["score", str(ROOT / "examples" / "preds.json"), str(ROOT / "examples" / "gt.json")]
    common = ["--metric", "all", "-q", "--workers", str(args.workers)]
    print()
    print(f"| {'run':<52} | {'wall':>9} | {'peak RSS':>9} | {'import':>7} | {'load':>5} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 7}|")
    with tempfile.TemporaryDirectory() as nc, tempfile.TemporaryDirectory() as dc:
        row("example, first-ever (empty Numba + dpeval caches)", run([*ex, *common], nc, dc))
        for _ in range(args.repeat):
            row("example, warm", run([*ex, *common], nc, dc))
    if args.skip_minival:
        return
    sys.path.insert(0, str(HERE))
    from _minival import cached_case

    case = cached_case(args.images, args.people)
    mv = ["score", str(case / "preds.json"), str(case / "gt.json"), *common]
    size = os.path.getsize(case / "preds.json") / 1e6
    name = f"minival {args.images} img, {size:.0f} MB"
    with tempfile.TemporaryDirectory() as nc, tempfile.TemporaryDirectory() as dc:
        if not args.skip_cold:
            row(f"{name}, first-ever", run(mv, nc, dc))
            with tempfile.TemporaryDirectory() as dc2:
                row(f"{name}, cold (no table)", run(mv, nc, dc2))
                dc = dc2
        if args.skip_cold:
            dc = _warm_dir()
            row(f"{name}, table cached, kernels compile", run(mv, nc, dc))
        for _ in range(args.repeat):
            row(f"{name}, warm", run(mv, nc, dc))


def _warm_dir() -> str:
    """With --skip-cold: the benchmarks' own cache (its table built once by an earlier run)."""
    d = HERE / ".cache" / "dpeval"
    if not any(d.glob("geodesic-*.npy")):
        raise SystemExit(
            f"--skip-cold needs a geodesic table in {d}; build it once with "
            f"DPEVAL_CACHE_DIR={d} dpeval cache build"
        )
    return str(d)


if __name__ == "__main__":
    main()
