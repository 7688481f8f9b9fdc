"""Time ``dpeval score`` end to end on a COCO-minival-sized case (challenge JSON).

Usage: python benchmarks/score.py [--images 1500] [--people 2300] [--workers 2]

Builds the case once into benchmarks/.cache/ (ignored by git), then runs the whole scoring
(read, decode, similarities, matching for GPS (both kappas), GPSm, IoU, pointwise) three
times in fresh processes: cold (no geodesic cache), warm (cache present), warm again.
Prints wall time and peak RSS of each run, and the numbers scored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import dpeval
from dpeval.api import score
t_import = time.perf_counter() - t0
s = score(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "import_s": t_import,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "metrics": {k: v.get("AP", v.get("AUC10")) for k, v in s.metrics.items()}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--people", type=int, default=2300)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _minival import cached_case

    case = cached_case(args.images, args.people)
    gt = json.loads((case / "gt.json").read_text())
    n_dense = sum("dp_x" in a for a in gt["annotations"])
    n_pts = sum(len(a.get("dp_x", [])) for a in gt["annotations"])
    n_det = len(json.loads((case / "preds.json").read_text()))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(
        f"case: {len(gt['images'])} images, {n_dense} annotated people, {n_pts} points, "
        f"{n_det} detections, preds.json {os.path.getsize(case / 'preds.json') / 1e6:.0f} MB"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "DPEVAL_CACHE_DIR": cache}
        for label in ("cold (no geodesic cache)", "warm", "warm again"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(case / "preds.json"),
                    str(case / "gt.json"),
                    str(args.workers),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{label:<26} {r['seconds']:7.2f} s  (import {r['import_s']:.2f} s)  "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        print("numbers:", json.dumps({k: round(v, 4) for k, v in r["metrics"].items()}))


if __name__ == "__main__":
    main()
