"""Rebuild the bundled example files (deterministic): ``python examples/make_examples.py``.

``gt.json`` is a small synthetic DensePose-COCO ground truth on the open template
(8 images, 12 annotated people with 100-150 points each, a few people without dense
points) and ``preds.json`` detections in the COCO DensePose challenge results format:
one per person (box jittered, IUV agreeing with the GT up to chart noise at 90% of the
points) plus a few false positives. Built by ``benchmarks/_minival.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

from _minival import build  # noqa: E402

if __name__ == "__main__":
    gt, preds = build(HERE, n_images=8, n_people=12, seed=2026, max_dets=4)
    print(gt, preds)
