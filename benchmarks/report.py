"""Time ``dpeval report`` end to end on a COCO-minival-sized case (1,500 images).

Usage: python benchmarks/report.py [--images 1500] [--people 2300] [--workers 2]
       [--resamples 1000]

Builds the case once into benchmarks/.cache/ (ignored by git), then runs the whole
report (read, similarities, official metrics, bootstrap intervals, taxonomy, figures,
HTML) in a fresh process and prints its wall time and the stage timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from dpeval.insight import analyze, write_report
ins = analyze(sys.argv[2], sys.argv[1], workers=int(sys.argv[3]), resamples=int(sys.argv[4]))
t1 = time.perf_counter()
write_report(ins, sys.argv[5])
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t0, "analyze_s": t1 - t0, "write_s": t2 - t1,
                  "intervals": json.loads(ins.intervals.to_json(orient="index"))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--people", type=int, default=2300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _minival import cached_case

    case = cached_case(args.images, args.people)
    with tempfile.TemporaryDirectory() as out:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(case / "gt.json"), str(case / "preds.json"),
             str(args.workers), str(args.resamples), out],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        res = json.loads(r.stdout.strip().splitlines()[-1])
    print(
        f"report on {args.images} images / {args.people} people, {args.workers} workers, "
        f"{args.resamples} resamples: {res['seconds']:.1f} s "
        f"(analyze {res['analyze_s']:.1f} s, figures + HTML {res['write_s']:.1f} s)"
    )
    for k, v in res["intervals"].items():
        print(f"  {k:<16} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")


if __name__ == "__main__":
    main()
